"""Issue 10, case 9: no card number, MAC, login, password or access token in any log
line, whatever the API answers.

Every reader taps known secrets (serial through a real pty, the keyboard on the
daemon's stdin, NFC through nfcpy's UDP driver and a fake card, MAC presence in a
network namespace the test makes, a portal sign-in over HTTP) while the simulated
Cobot server answers each error path (401, 403, 404, 422, 429, 5xx, a hang past the
timeout, garbage). Then ALL log output is searched for the secrets: the daemon's whole
stderr (structlog JSON and stdlib logging), and for the in-process parts everything
written through ``gateway.log.configure``'s structlog and root handlers, with the
stdlib loggers (aiohttp's access log among them) at DEBUG.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import sys
import tty
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import structlog

from gateway.cobot.client import CobotClient
from gateway.cobot.errors import ApiError
from gateway.log import configure
from gateway.readers.serial.frames import encode_rdm6300
from gateway.redact import RedactingFormatter, redact, redact_text, redaction_processor
from gateway.sim import Role, SimSpace, demo_space, run_sim
from gateway.sim import Scope as SimScope
from gateway.sim.seed import ADA, MAC_TOKEN, NFC_TOKEN, PASS_TOKEN, RDM_TOKEN
from tests.configs import daemon_config
from tests.daemon import REPO, Daemon
from tests.fakecard import Card, CardField
from tests.harness import eventually

ACCESS_TOKEN = "sim-secret-access-token-5f3a9c"  # the daemon's own token (all scopes)
LIMITED = "sim-secret-limited-token-7d21e0"  # checkin only: 403 on the token endpoints
UNKNOWN_CARD = "0F1E2D3C4B"  # a card nobody registered: 422 from the preview
KEYBOARD_CARD = "KBD-77123456"  # typed at the keyboard, nobody's
STRANGER_MAC = "00:16:3e:12:34:56"
LOGIN = "ada.lovelace@example.org"
PASSWORD = "correct-horse-battery-staple"

# (fault mode, HTTP status) the simulator answers with; None: no fault.
PHASES: list[tuple[str | None, int]] = [
    (None, 200),  # 422 for the unknown cards, 403 on token endpoints with LIMITED
    ("error", 401),
    ("error", 403),
    ("error", 404),
    ("error", 500),
    ("error", 503),
    ("garbage", 200),
    ("error", 429),  # late: its block would hold the phases after it a minute
    ("hang", 0),
]


def secrets() -> list[str]:
    cards = [RDM_TOKEN, UNKNOWN_CARD, NFC_TOKEN, KEYBOARD_CARD, PASS_TOKEN]
    macs = [MAC_TOKEN, STRANGER_MAC]
    found = [ACCESS_TOKEN, LIMITED, LOGIN, PASSWORD, "lovelace@example", "lovelace%40example"]
    for value in cards + macs:
        found += [value, value.lower(), value.upper()]
    found += [m.replace(":", "") for m in macs] + [m.replace(":", "-") for m in macs]
    return found


def assert_no_secret(text: str, where: str, extra: tuple[str, ...] = ()) -> None:
    leaked = sorted({s for s in [*secrets(), *extra] if s in text})
    assert not leaked, f"{where} logged {leaked}:\n" + "\n".join(
        line for line in text.splitlines() if any(s in line for s in leaked)
    )


# --- the pieces ----------------------------------------------------------------------


def test_the_central_redactors() -> None:
    assert redact_text("GET /api/check_in_tokens/0F1E2D3C4B") == (
        "GET /api/check_in_tokens/********4B"
    )
    assert redact_text("url='http://h:1/api/check_in?token=0F1E2D3C4B&x=1'") == (
        "url='http://h:1/api/check_in?token=********4B&x=1'"
    )
    assert redact_text("GET /api/check_in?login=ada%40example.org") == (
        "GET /api/check_in?login=" + redact("ada%40example.org")
    )
    assert redact_text(f"seen {STRANGER_MAC} and 00-16-3E-12-34-56") == (
        f"seen {redact(STRANGER_MAC)} and {redact('00-16-3E-12-34-56')}"
    )
    assert redact_text(f"as {LOGIN} at 10:05:24") == f"as {redact(LOGIN)} at 10:05:24"
    assert redact_text("Authorization: Bearer abc.def-123") == "Authorization: Bearer *********23"
    assert redact_text("http://user:pw@host/x") == "http://***@host/x"
    # Not secrets: member ids, check-in ids, times, paths without tokens.
    plain = "membership fdc00612c086d003fab5d99539153f68 check-in 479c76a975 at 2026/11/30"
    assert redact_text(plain) == plain
    assert redact_text("DELETE /api/memberships/87e630/check_ins/current") == (
        "DELETE /api/memberships/87e630/check_ins/current"
    )
    event = {"event": "x", "request": "GET /api/check_in_tokens/0F1E2D3C4B", "mac": STRANGER_MAC}
    out = redaction_processor(None, "info", event)
    assert out == {
        "event": "x",
        "request": "GET /api/check_in_tokens/********4B",
        "mac": redact(STRANGER_MAC),
    }
    record = logging.LogRecord(
        "aiohttp.access", logging.INFO, "f", 1, '"%s" %s', ("GET /?token=0F1E2D3C4B", 200), None
    )
    assert "0F1E2D3C4B" not in RedactingFormatter().format(record)


@contextlib.contextmanager
def all_logs() -> Iterator[io.StringIO]:
    """Everything ``configure`` sets up writes here: structlog and the root handler,
    every stdlib logger (aiohttp.access too) at DEBUG."""
    buffer = io.StringIO()
    saved = sys.stderr
    sys.stderr = buffer
    try:
        configure("debug", "json")
    finally:
        sys.stderr = saved
    names = ("aiohttp", "aiohttp.access", "aiohttp.server", "asyncio", "nfc")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root = logging.getLogger()
    root_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        for h in [h for h in root.handlers if type(h).__name__ == "_GatewayHandler"]:
            root.removeHandler(h)
        root.setLevel(root_level)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        structlog.reset_defaults()


def faulty(space: SimSpace, mode: str | None, status: int) -> None:
    if mode is None:
        space.faults.clear()
    else:
        space.faults.set(mode, status=status)  # type: ignore[arg-type]


# --- every API error path, through the client --------------------------------------


async def test_every_api_error_path_logs_no_secret() -> None:
    space = demo_space()
    space.add_access_token(ACCESS_TOKEN, role=Role.ADMIN, user="secret")
    space.add_access_token(LIMITED, role=Role.ADMIN, scopes=[SimScope.CHECKIN], user="limited")
    seen: set[type[ApiError]] = set()
    with all_logs() as logs:
        async with run_sim(space) as url:
            for token in (ACCESS_TOKEN, LIMITED):
                for mode, status in PHASES:
                    faulty(space, mode, status)
                    # No limiter: a 429's block would hold the following calls a minute.
                    async with CobotClient(url, token, None, timeout=0.5) as client:
                        calls = (
                            client.check_in(token=UNKNOWN_CARD, preview=True),
                            client.check_in(login=LOGIN, password=PASSWORD, token=MAC_TOKEN),
                            client.check_in_status(token=RDM_TOKEN),
                            client.check_in_status(login=LOGIN),
                            client.get_token(UNKNOWN_CARD),
                            client.get_token(STRANGER_MAC),
                            client.delete_token(NFC_TOKEN),
                            client.create_token(ADA, KEYBOARD_CARD),
                            client.list_tokens(),
                        )
                        for call in calls:
                            try:
                                await call
                            except ApiError as exc:
                                seen.add(type(exc))
                                structlog.get_logger("test").warning("failed", error=str(exc))
                                logging.getLogger("test").warning("failed: %s", exc)
            space.faults.clear()
    names = {t.__name__ for t in seen}
    assert names >= {"Refused", "Unauthorized", "RateLimited", "Unavailable", "MalformedResponse"}
    text = logs.getvalue()
    assert "cobot_auth_failed" in text and "/api/check_in_tokens/********4B" in text
    assert_no_secret(text, "the client")


# --- serial, keyboard and NFC readers in the daemon -------------------------------------


class LoggedDaemon(Daemon):
    """The daemon with a keyboard on its stdin, keeping its stderr byte for byte."""

    raw: list[str]

    async def start(self) -> None:
        self.raw = []
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--config",
            str(self.config),
            cwd=REPO,
            env={**os.environ, **self.env},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read_raw())

    async def _read_raw(self) -> None:
        import json

        assert self.proc is not None and self.proc.stderr is not None
        async for line in self.proc.stderr:
            text = line.decode(errors="replace")
            self.raw.append(text)
            try:
                self.events.append(json.loads(text))
            except ValueError:
                self.events.append({"event": "raw", "text": text})
            self._new.set()

    def type(self, *lines: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write("".join(f"{line}\n" for line in lines).encode())


def daemon_toml(tmp_path: Path, url: str, serial_port: str, nfc_device: str) -> Path:
    reader = f'name = "card"\ntype = "serial"\nport = "{serial_port}"\nprotocol = "rdm6300"'
    cfg = daemon_config(
        tmp_path,
        url,
        reader,
        gateway='log_level = "debug"\ndecision_deadline = 1.0',
        cobot="request_timeout = 0.5",
    )
    cfg.write_text(
        cfg.read_text()
        + f"""
[[readers]]
name = "desk"
type = "keyboard"
direction = "out"
door = "front"

[[readers]]
name = "nfc"
type = "nfc"
device = "{nfc_device}"
door = "front"
"""
    )
    return cfg


@pytest.mark.real
@pytest.mark.timeout(400)
@pytest.mark.parametrize("token", [ACCESS_TOKEN, LIMITED])
async def test_readers_in_the_daemon_log_no_secret(tmp_path: Path, token: str) -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    space = demo_space()
    space.add_access_token(ACCESS_TOKEN, role=Role.ADMIN, user="secret")
    space.add_access_token(LIMITED, role=Role.ADMIN, scopes=[SimScope.CHECKIN], user="limited")
    everything: list[str] = []
    try:
        with CardField() as field:
            async with run_sim(space) as url:
                for i, (mode, status) in enumerate(PHASES):
                    state = tmp_path / f"phase{i}"
                    state.mkdir()
                    cfg = daemon_toml(state, url, os.ttyname(slave), field.device)
                    daemon = LoggedDaemon(cfg, {"COBOT_ACCESS_TOKEN": token})
                    await daemon.start()
                    try:
                        await daemon.wait_for("serial_reader_ready")
                        await daemon.wait_for("nfc_reader_ready")
                        faulty(space, mode, status)
                        hits = space.faults.hits
                        # A card held on an RDM6300 repeats its frame (one frame is a phantom).
                        os.write(master, encode_rdm6300(bytes.fromhex(RDM_TOKEN)) * 2)
                        os.write(master, encode_rdm6300(bytes.fromhex(UNKNOWN_CARD)) * 2)
                        # Check-outs by card, MAC and an unknown token: GET
                        # /api/check_in_tokens/<token> when the cache does not know it.
                        daemon.type(KEYBOARD_CARD, MAC_TOKEN, STRANGER_MAC, PASS_TOKEN)
                        field.present(Card(bytes.fromhex(NFC_TOKEN)))
                        try:
                            await eventually(
                                lambda d=daemon: (
                                    [e.get("event") for e in d.events].count("tap") >= 7
                                ),
                                timeout=20,
                            )
                        except TimeoutError:
                            raise AssertionError(f"phase {mode} {status}: {daemon.log()}") from None
                        field.lift()
                        if mode is not None:
                            try:
                                await eventually(lambda h=hits: space.faults.hits > h, timeout=5)
                            except TimeoutError:
                                raise AssertionError(f"{mode} {status} never met") from None
                        await daemon.stop()
                    finally:
                        await daemon.kill()
                        space.faults.clear()
                        everything.extend(daemon.raw)
    finally:
        os.close(master)
        os.close(slave)
    text = "".join(everything)
    taps = [line for line in everything if '"event": "tap"' in line]
    assert len(taps) >= 7 * len(PHASES)
    assert '"token": "********4E"' in text  # the serial card's tap, redacted
    if token == LIMITED:
        # The report's case: 403s on the token endpoints, logged with the token masked.
        assert "cobot_auth_failed" in text
    assert_no_secret(text, "the daemon")


# --- the portal sign-in -----------------------------------------------------------------


async def test_portal_sign_in_logs_no_secret(tmp_path: Path) -> None:
    from tests.portal_support import CLIENTS, running_portal, sign_in

    ip = next(iter(CLIENTS))
    space = demo_space()
    member = space.member(ADA)
    with all_logs() as logs:
        async with running_portal(tmp_path, space=space, max_failures=1000) as portal:
            for mode, status in PHASES:
                if mode == "hang":
                    continue  # the portal's own deadline: covered by the client test
                faulty(space, mode, status)
                async with portal.session(ip) as http:
                    for login, password in (
                        (LOGIN, PASSWORD),
                        (member.login, PASSWORD),
                        (member.login, member.password),  # last: then the page is gone
                    ):
                        with contextlib.suppress(aiohttp.ClientError):
                            await sign_in(http, portal.url, login, password)
                await portal.service.revoke(CLIENTS[ip])  # the next phase signs in again
                space.faults.clear()
    text = logs.getvalue()
    assert "portal_sign_in" in text
    assert_no_secret(text, "the portal", (member.login, member.password))


# --- Wi-Fi presence in a namespace --------------------------------------------------------


@pytest.fixture
def lan() -> Iterator[object]:
    from tests.netns import required_lan

    with required_lan() as made:
        yield made


@pytest.mark.real
async def test_mac_presence_logs_no_secret(
    lan: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.readers.mac import sniff
    from tests.netns import Lan, arping, udhcpc
    from tests.test_mac_e2e import site

    assert isinstance(lan, Lan)
    real_open = sniff.open_packet_socket
    monkeypatch.setattr(
        sniff, "open_packet_socket", lambda i: lan.in_listener(lambda: real_open(i))
    )
    with all_logs() as logs:
        async with site(tmp_path, checkout_on_departure=True) as s:
            for mode, status in PHASES[:5]:
                faulty(s.space, mode, status)
                for mac in (MAC_TOKEN, STRANGER_MAC):
                    lan.set_client_mac(mac)
                    await udhcpc(lan, "laptop", tries=1)
                    await arping(lan)
                s.space.faults.clear()
            await eventually(lambda: s.reader.presence.device(STRANGER_MAC) is not None)
    text = logs.getvalue()
    assert f'"mac": "{redact(STRANGER_MAC)}"' in text  # the reader did log the devices
    assert_no_secret(text, "the MAC reader")


async def test_an_answer_quoting_the_card_back_is_masked_in_the_log() -> None:
    """Cobot's words go into logs (a refusal's reason); were they to quote the card
    number, the access token or the login back, the log still masks it."""
    from aiohttp import web

    async def refuse(request: web.Request) -> web.Response:
        body = await request.json()
        said = body.get("token") or body.get("login")
        return web.json_response({"errors": {"token": f"{said} is unknown"}}, status=422)

    app = web.Application()
    app.router.add_post("/api/check_ins", refuse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        with all_logs() as logs:
            async with CobotClient(url, ACCESS_TOKEN, None, timeout=2.0) as client:
                for _ in range(70):  # more than the 64 remembered: the access token stays
                    with contextlib.suppress(ApiError):
                        await client.check_in(token=f"CARD{_:06d}")
                for kwargs in ({"token": UNKNOWN_CARD}, {"login": "joe", "password": PASSWORD}):
                    try:
                        await client.check_in(**kwargs)
                    except ApiError as exc:
                        structlog.get_logger("test").warning(
                            "refused", reason=str(exc), also=f"{ACCESS_TOKEN}"
                        )
    finally:
        await runner.cleanup()
    text = logs.getvalue()
    assert '"reason": "token: ********4B is unknown"' in text
    assert_no_secret(text, "a quoted answer")
