"""`checkin-gateway doctor` against the simulated Cobot server (real HTTP on loopback),
real device nodes made in a temp dir, and a service user that is not root."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.clock import kernel_synchronized
from gateway.config.model import KeyboardReaderConfig, ReaderBase
from gateway.doctor import Report, Status, System, run_doctor
from gateway.doctor.access import Principal
from gateway.doctor.clock import clock_synchronised, timedatectl
from gateway.doctor.devices import check_device
from gateway.doctor.readers import check_readers
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from gateway.sim.seed import ADA_TOKEN, LIMITED_TOKEN

SERVICE = Principal("svc", uid=54321, gids=frozenset({54321}), is_service=True)


async def synced() -> bool | None:
    return True


SYNCED = (("test-clock", synced),)


def write_config(tmp_path: Path, base_url: str, extra: str = "") -> Path:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    os.chown(state, SERVICE.uid, -1)
    path = tmp_path / "config.toml"
    path.write_text(
        f'[gateway]\nstate_dir = "{state}"\n[cobot]\nbase_url = "{base_url}"\n'
        f'request_timeout = 5.0\n{extra}\n[[doors]]\ntype = "command"\nname = "front"\n'
        'command = ["true"]\n'
    )
    return path


def system_for(tmp_path: Path, **changes: object) -> System:
    base = System(
        unit_dir=tmp_path / "units",
        credential_file=tmp_path / "no-credential",
        default_state_dir=tmp_path / "lib",
        principal=SERVICE,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def sim() -> AsyncIterator[str]:
    async with run_sim(demo_space()) as url:
        yield url


def parse_rows(text: str) -> dict[str, str]:
    """Table rows as {check: "status detail"}, wrapped details joined again."""
    rows: dict[str, str] = {}
    current: str | None = None  # the row whose detail continues on indented lines
    for line in text.splitlines():
        head = next((st for st in Status if f"  {st.value}  " in line), None)
        if head is not None and not line.startswith(" "):
            name, detail = line.split(f"  {head.value}  ", 1)
            current = name.strip()
            rows[current] = f"{head.value} {detail.strip()}"
        elif line.startswith(" ") and current is not None:
            if line.strip().startswith("fix:"):
                current = None  # the fix is checked on the whole text
            else:
                rows[current] += " " + line.strip()
        else:
            current = None
    return rows


async def doctor(cfg: Path, system: System, token: str | None) -> tuple[int, str, dict[str, str]]:
    out = io.StringIO()
    env = {"COBOT_ACCESS_TOKEN": token} if token else {}
    code = await run_doctor(cfg, out, env=env, system=system, clock_probes=SYNCED)
    rows = parse_rows(out.getvalue())
    return code, out.getvalue(), rows


async def test_good_token_all_fine(tmp_path: Path) -> None:
    async with sim() as url:
        code, text, rows = await doctor(
            write_config(tmp_path, url), system_for(tmp_path), ADMIN_TOKEN
        )
    assert code == 0, text
    assert rows["api"].startswith(f"ok {url} answered in")
    assert rows["api token valid"].startswith("ok")
    assert rows["scope checkin"].startswith("ok")
    assert rows["scope checkin_tokens"].startswith("ok")
    assert rows["state dir"].startswith("ok")
    assert rows["clock"] == "ok synchronised (test-clock)"
    assert "FIX" not in text
    assert ADMIN_TOKEN not in text


async def test_bad_token_says_401_and_what_to_do(tmp_path: Path) -> None:
    async with sim() as url:
        code, text, rows = await doctor(write_config(tmp_path, url), system_for(tmp_path), "wrong")
    assert code == 1
    assert rows["api"].startswith("ok")  # the API answered: it is the token
    assert rows["api token valid"].startswith("FIX the API refused the token (401)")
    assert "fix: create an access token for a space admin" in text
    assert "scope checkin" not in rows  # pointless after a 401


async def test_token_without_checkin_tokens_scope_says_403(tmp_path: Path) -> None:
    async with sim() as url:
        code, _text, rows = await doctor(
            write_config(tmp_path, url), system_for(tmp_path), LIMITED_TOKEN
        )
    assert code == 1
    assert rows["api token valid"].startswith("ok")
    assert rows["scope checkin"].startswith("ok")
    assert rows["scope checkin_tokens"].startswith(
        "FIX the token lacks the scope checkin_tokens; the gateway needs it for the token list"
    )


async def test_a_members_token_is_not_an_admins(tmp_path: Path) -> None:
    async with sim() as url:
        code, _, rows = await doctor(write_config(tmp_path, url), system_for(tmp_path), ADA_TOKEN)
    assert code == 1
    assert "not a space admin's" in rows["scope checkin"]


async def test_unreachable_api(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    code, text, rows = await doctor(write_config(tmp_path, url), system_for(tmp_path), "t")
    assert code == 1
    assert rows["api"].startswith(f"FIX {url}: no answer")
    assert "check the network, DNS and cobot.base_url" in text


async def test_token_from_the_credential_file_when_run_outside_the_unit(tmp_path: Path) -> None:
    credential = tmp_path / "cobot-token"
    credential.write_text(ADMIN_TOKEN + "\n")
    async with sim() as url:
        code, _, rows = await doctor(
            write_config(tmp_path, url), system_for(tmp_path, credential_file=credential), None
        )
    assert code == 0
    assert rows["api token"] == f"ok found in {credential} (LoadCredential)"


async def test_no_token_anywhere(tmp_path: Path) -> None:
    async with sim() as url:
        code, _text, rows = await doctor(write_config(tmp_path, url), system_for(tmp_path), None)
    assert code == 1
    assert rows["api token"].startswith("FIX no access token")
    assert rows["api"].startswith("skip")


async def test_a_broken_config_is_reported_and_the_clock_still_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[gateway]\nstate_dir = "/x"\n[cobot]\nbase_url = "ftp://nope"\n')
    code, _text, rows = await doctor(cfg, system_for(tmp_path), None)
    assert code == 1
    assert rows["config"].startswith("FIX")
    assert "cobot.base_url" in rows["config"]
    assert "clock" in rows


async def test_state_dir_the_service_cannot_write(tmp_path: Path) -> None:
    async with sim() as url:
        cfg = write_config(tmp_path, url)
        os.chown(tmp_path / "state", 0, 0)
        (tmp_path / "state").chmod(0o755)
        code, _, rows = await doctor(cfg, system_for(tmp_path), ADMIN_TOKEN)
    assert code == 1
    assert rows["state dir"] == f"FIX {tmp_path / 'state'}: svc may not write here"


async def test_a_read_only_state_dir_is_not_called_writable(tmp_path: Path) -> None:
    """Found by a first-time user: the mode bits allowed writing, the mount did not; `run`
    would run from memory, so `doctor` must say so (a real read-only bind mount)."""
    import subprocess

    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("mount needs root under CI")
        pytest.skip("mount needs root")
    async with sim() as url:
        cfg = write_config(tmp_path, url)
        state = tmp_path / "state"
        subprocess.run(["mount", "--bind", str(state), str(state)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(state)], check=True)
            code, text, rows = await doctor(cfg, system_for(tmp_path), ADMIN_TOKEN)
        finally:
            subprocess.run(["umount", "-l", str(state)], check=False)
    assert code == 1
    assert rows["state dir"].startswith(f"FIX {state}: the file system is mounted read-only")
    assert "remount it read-write" in text


async def test_state_dir_outside_protect_system_with_the_unit_installed(tmp_path: Path) -> None:
    (tmp_path / "units").mkdir()
    (tmp_path / "units" / "checkin-gateway.service").write_text("[Service]\n")
    async with sim() as url:
        _, text, _ = await doctor(write_config(tmp_path, url), system_for(tmp_path), ADMIN_TOKEN)
    assert "ProtectSystem=strict leaves only" in text


def device(tmp_path: Path, name: str, major: int, minor: int, gid: int, mode: int) -> str:
    path = tmp_path / name
    os.mknod(path, stat.S_IFCHR | mode, os.makedev(major, minor))
    os.chown(path, 0, gid)
    path.chmod(mode)  # mknod's mode went through the umask
    return str(path)


@pytest.mark.real
def test_device_permissions_as_the_service_user(tmp_path: Path) -> None:
    from tests.conftest import require

    require(os.geteuid() == 0, "making device nodes needs root")
    uart = device(tmp_path, "ttyS9", 4, 73, gid=20, mode=0o660)  # like /dev/ttyS9
    system = system_for(tmp_path)
    report = Report()
    check_device(report, "reader r", uart, system, "plug it in")
    assert report.checks[-1].status is Status.FIX
    assert "svc may not read and write it (mode 660, group" in report.checks[-1].detail
    in_group = dataclasses.replace(SERVICE, gids=frozenset({SERVICE.uid, 20}))
    check_device(report, "reader r", uart, system_for(tmp_path, principal=in_group), "")
    assert report.checks[-1].status is Status.OK
    # /dev/mem-like: readable by the group but not a driver the unit admits.
    mem = device(tmp_path, "mem", 1, 1, gid=20, mode=0o660)
    check_device(report, "reader m", mem, system_for(tmp_path, principal=in_group), "")
    assert report.checks[-1].status is Status.FIX
    assert "DeviceAllow=char-mem rw" in (report.checks[-1].fix or "")
    check_device(report, "reader x", str(tmp_path / "ttyUSB7"), system, "plug it in")
    assert (report.checks[-1].status, report.checks[-1].fix) == (Status.FIX, "plug it in")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PresenceLike(ReaderBase):
    """A reader type this doctor does not know, with a network interface."""

    type: str = "presence"
    interface: str


def test_unknown_reader_types_get_the_generic_checks(tmp_path: Path) -> None:
    system = system_for(tmp_path)
    report = Report()
    check_readers(report, (PresenceLike(name="wifi", interface="lo"),), system)
    assert report.checks[-1].status is Status.OK
    check_readers(report, (PresenceLike(name="wifi", interface="nope0"),), system)
    assert report.checks[-1].status is Status.FIX
    (tmp_path / "units").mkdir()
    (tmp_path / "units" / "checkin-gateway.service").write_text("[Service]\n")
    check_readers(report, (PresenceLike(name="wifi", interface="lo"),), system)
    assert report.checks[-1].status is Status.FIX
    assert "WITH=mac-presence" in (report.checks[-1].fix or "")
    check_readers(report, (KeyboardReaderConfig(name="kb"),), system)
    assert report.checks[-1].status is Status.WARN


async def test_clock_unknown_is_said_not_guessed() -> None:
    async def nothing() -> bool | None:
        return None

    async def unsynced() -> bool | None:
        return False

    assert await clock_synchronised((("a", nothing), ("b", nothing))) == (
        None,
        "neither timedatectl nor adjtimex could tell",
    )
    assert await clock_synchronised((("a", nothing), ("b", unsynced))) == (False, "b")
    # The real probes answer without raising, whatever this machine knows.
    assert await timedatectl() in (True, False, None)
    assert kernel_synchronized() in (True, False, None)


async def test_cli_doctor_subcommand(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("not toml [")
    out = io.StringIO()
    assert await main(["doctor", "--config", str(cfg)], out) == 1
    rows = parse_rows(out.getvalue())
    assert rows["config"].startswith(f"FIX {cfg}: not valid TOML")


def test_nfc_device_strings_read_as_nfcpy_reads_them(tmp_path: Path) -> None:
    from gateway.doctor.devices import _usb_matches, nfc_tty_paths

    for name in ("ttyAMA0", "ttyUSB0", "ttyUSB1", "serial0", "ttyS0"):
        (tmp_path / name).touch()
    assert nfc_tty_paths("tty:AMA0:pn532", tmp_path) == [tmp_path / "ttyAMA0"]
    assert nfc_tty_paths("tty:USB:pn532", tmp_path) == [tmp_path / "ttyUSB0", tmp_path / "ttyUSB1"]
    assert nfc_tty_paths("tty:serial0:pn532", tmp_path) == [tmp_path / "serial0"]
    acr = ("072f", "2200")
    assert _usb_matches("usb:072f:2200", acr, 1, 5)
    assert _usb_matches("usb:072F", acr, 1, 5)
    assert not _usb_matches("usb:054c:06c1", acr, 1, 5)
    assert _usb_matches("usb:001:005", acr, 1, 5)  # bus:address, decimal
    assert not _usb_matches("usb:001:006", acr, 1, 5)
    assert _usb_matches("usb:1", acr, 1, 5)


def test_udev_rules_and_doctor_know_every_usb_reader_nfcpy_drives() -> None:
    from nfc.clf.device import usb_device_map

    from gateway.doctor.devices import NFC_USB_IDS

    rules = (Path(__file__).parent.parent / "hardware/udev/60-checkin-gateway.rules").read_text()
    for vid, pid in usb_device_map:
        ids = (f"{vid:04x}", f"{pid:04x}")
        assert ids in NFC_USB_IDS
        assert f'ATTR{{idVendor}}=="{ids[0]}", ATTR{{idProduct}}=="{ids[1]}"' in rules
