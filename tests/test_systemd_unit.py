"""The shipped unit, its drop-ins, the sysusers file and `make install-files`, checked
with systemd's own tools (systemd-analyze verify/security, systemd-sysusers)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config.loader import CREDENTIAL_NAME
from tests.conftest import require

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "checkin-gateway.service"
DROPINS = ROOT / "systemd" / "checkin-gateway.service.d"
INSTALLED_BINARY = "/opt/checkin-gateway/venv/bin/checkin-gateway"
# The exposure `systemd-analyze security` gives the unit (README, "Hardening"); a change
# that weakens it fails here rather than silently.
MAX_EXPOSURE = {"": 1.5, "mac-presence": 1.8, "portal": 1.8}

pytestmark = pytest.mark.real


def settings(text: str) -> list[tuple[str, str]]:
    return [
        (k.strip(), v.strip())
        for line in text.splitlines()
        if "=" in line and not line.lstrip().startswith(("#", "["))
        for k, v in [line.split("=", 1)]
    ]


def values(text: str, key: str) -> list[str]:
    return [v for k, v in settings(text) if k == key]


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    require(path is not None, "systemd-analyze (Debian package systemd) is not installed")
    assert path is not None
    return path


def staged(tmp_path: Path, dropins: list[str]) -> Path:
    """The unit (and drop-ins) in a unit directory of their own, ExecStart pointed at
    this checkout's real entry point: verify insists the binary exists."""
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    entry = Path(sys.executable).parent / "checkin-gateway"
    require(entry.exists(), f"{entry} missing: run make venv")
    text = UNIT.read_text().replace(INSTALLED_BINARY, str(entry))
    (unit_dir / UNIT.name).write_text(text)
    if dropins:
        (unit_dir / f"{UNIT.name}.d").mkdir()
        for name in dropins:
            shutil.copy(DROPINS / f"{name}.conf", unit_dir / f"{UNIT.name}.d")
    return unit_dir


@pytest.mark.parametrize("dropin", ["", "mac-presence", "portal", "moco"])
def test_systemd_analyze_verify(tmp_path: Path, dropin: str) -> None:
    unit_dir = staged(tmp_path, [dropin] if dropin else [])
    result = subprocess.run(
        [systemd_analyze(), "verify", str(unit_dir / UNIT.name)],
        env={"SYSTEMD_UNIT_PATH": f"{unit_dir}:", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    # Unknown keys are only warnings (exit 0): the output must be empty too.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    unit_dir = staged(tmp_path, [])
    unit = unit_dir / UNIT.name
    unit.write_text(unit.read_text().replace("ProtectSystem=", "ProtectSystm="))
    result = subprocess.run(
        [systemd_analyze(), "verify", str(unit)],
        env={"SYSTEMD_UNIT_PATH": f"{unit_dir}:", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Unknown key" in result.stderr


@pytest.mark.parametrize(("dropin", "limit"), MAX_EXPOSURE.items())
def test_security_exposure(tmp_path: Path, dropin: str, limit: float) -> None:
    unit_dir = staged(tmp_path, [dropin] if dropin else [])
    result = subprocess.run(
        [
            systemd_analyze(),
            "security",
            "--offline=yes",
            f"--threshold={limit * 10:.0f}",
            "--no-pager",
            UNIT.name,
        ],
        cwd=unit_dir,
        env={"SYSTEMD_UNIT_PATH": f"{unit_dir}:", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert found, result.stdout[-500:] + result.stderr
    assert float(found.group(1)) <= limit, found.group(0)
    if dropin:
        caps = {"mac-presence": "CAP_NET_RAW", "portal": "CAP_NET_ADMIN"}[dropin]
        assert caps in (DROPINS / f"{dropin}.conf").read_text()


def test_the_unit_says_what_the_issue_asks() -> None:
    text = UNIT.read_text()
    one = {k: v for k, v in settings(text)}
    assert one["Type"] == "notify"
    assert one["Restart"] == "on-failure"
    assert one["WatchdogSec"].endswith("s")
    assert one["User"] == "checkin-gateway"
    assert one["ProtectSystem"] == "strict"
    assert one["NoNewPrivileges"] == "yes"
    # No capability unless a drop-in grants it.
    assert values(text, "CapabilityBoundingSet") == [""]
    assert values(text, "AmbientCapabilities") == [""]
    assert set(one["SupplementaryGroups"].split()) == {"dialout", "gpio", "input"}
    assert one["StateDirectory"] == one["ConfigurationDirectory"] == "checkin-gateway"
    assert one["LoadCredential"] == f"{CREDENTIAL_NAME}:/etc/checkin-gateway/cobot-token"
    assert one["ExecStart"].startswith(f"{INSTALLED_BINARY} run --config ")
    # The example config's state_dir is where StateDirectory= puts it.
    example = (ROOT / "config" / "example.toml").read_text()
    assert 'state_dir = "/var/lib/checkin-gateway"' in example


def test_doctor_admits_exactly_the_devices_the_unit_admits() -> None:
    from gateway.doctor.access import DEVICE_ALLOW

    allowed = {v.split()[0].removeprefix("char-") for v in values(UNIT.read_text(), "DeviceAllow")}
    assert allowed == set(DEVICE_ALLOW)


def test_sysusers_creates_the_user_and_groups(tmp_path: Path) -> None:
    sysusers = shutil.which("systemd-sysusers")
    require(sysusers is not None, "systemd-sysusers is not installed")
    assert sysusers is not None
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "group").write_text("root:x:0:\ndialout:x:20:\n")
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    subprocess.run(
        [sysusers, f"--root={tmp_path}", str(ROOT / "systemd" / "checkin-gateway.sysusers")],
        capture_output=True,
        check=True,
    )
    passwd = (etc / "passwd").read_text()
    group = (etc / "group").read_text()
    assert re.search(r"^checkin-gateway:x:\d+:\d+:.*:/usr/sbin/nologin$", passwd, re.M)
    assert re.search(r"^dialout:x:20:checkin-gateway$", group, re.M)
    assert re.search(r"^gpio:x:\d+:checkin-gateway$", group, re.M)
    assert re.search(r"^input:x:\d+:checkin-gateway$", group, re.M)


def test_make_install_files_lays_out_a_root(tmp_path: Path) -> None:
    make = shutil.which("make")
    require(make is not None, "make is not installed")
    assert make is not None

    def install(*args: str) -> None:
        subprocess.run(
            [make, "-s", "-C", str(ROOT), "install-files", f"DESTDIR={tmp_path}", *args],
            capture_output=True,
            check=True,
        )

    install("WITH=mac-presence portal")
    unit_dir = tmp_path / "etc/systemd/system"
    assert (unit_dir / UNIT.name).read_text() == UNIT.read_text()
    assert {p.name for p in (unit_dir / f"{UNIT.name}.d").iterdir()} == {
        "mac-presence.conf",
        "portal.conf",
    }
    config = tmp_path / "etc/checkin-gateway/config.toml"
    token = tmp_path / "etc/checkin-gateway/cobot-token"
    assert config.read_text() == (ROOT / "config/example.toml").read_text()
    assert token.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "etc/udev/rules.d/60-checkin-gateway.rules").exists()
    assert (tmp_path / "etc/sysusers.d/checkin-gateway.conf").exists()
    # A second install keeps the operator's config and token; WITH is declarative.
    config.write_text("# edited\n")
    token.write_text("secret\n")
    install()
    assert config.read_text() == "# edited\n"
    assert token.read_text() == "secret\n"
    assert list((unit_dir / f"{UNIT.name}.d").iterdir()) == []
    with pytest.raises(subprocess.CalledProcessError):
        install("WITH=everything")


UDEV_KEY = re.compile(
    r'^(?P<key>[A-Z_]+)(\{(?P<attr>[A-Za-z_]+)\})?(?P<op>==|!=|\+=|=|:=)"(?P<value>[^"]*)"$'
)
UDEV_KEYS = {"SUBSYSTEM", "KERNEL", "ENV", "ATTR", "ATTRS", "GROUP", "MODE", "SYMLINK"}


def test_udev_rules_are_well_formed() -> None:
    rules = (ROOT / "hardware/udev/60-checkin-gateway.rules").read_text().splitlines()
    active = [line for line in rules if line.strip() and not line.startswith("#")]
    examples = [line[1:] for line in rules if line.startswith("#SUBSYSTEM")]
    assert active and examples
    for line in active + examples:
        parts = [p.strip() for p in line.split(", ")]
        for part in parts:
            m = UDEV_KEY.match(part)
            assert m, f"not a udev key: {part!r} in {line!r}"
            assert m["key"] in UDEV_KEYS, part
        assert any(UDEV_KEY.match(p)["op"] == "==" for p in parts), line  # type: ignore[index]
        assert any(UDEV_KEY.match(p)["op"] != "==" for p in parts), line  # type: ignore[index]
    joined = "\n".join(active)
    assert 'ATTR{idVendor}=="072f", ATTR{idProduct}=="2200", GROUP="checkin-gateway"' in joined
    assert 'KERNEL=="gpiochip*", GROUP="gpio"' in joined


def test_with_moco_the_key_is_a_credential_and_an_empty_root_only_file(tmp_path: Path) -> None:
    make = shutil.which("make")
    assert make is not None
    subprocess.run(
        [make, "-s", "-C", str(ROOT), "install-files", f"DESTDIR={tmp_path}", "WITH=moco"],
        capture_output=True,
        check=True,
    )
    dropin = tmp_path / "etc/systemd/system" / f"{UNIT.name}.d" / "moco.conf"
    assert "LoadCredential=moco-api-key:/etc/checkin-gateway/moco-key" in dropin.read_text()
    key = tmp_path / "etc/checkin-gateway/moco-key"
    assert key.read_text() == "" and key.stat().st_mode & 0o777 == 0o600
