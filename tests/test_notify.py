"""sd_notify against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from gateway.readers.base import ReaderState
from gateway.systemd import Notifier, status_line
from gateway.systemd.notify import parse_address, parse_watchdog


@pytest.fixture
def systemd_socket() -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket like systemd's, and its path for $NOTIFY_SOCKET."""
    # Short directory: AF_UNIX paths are limited to 108 bytes, pytest's tmp_path is long.
    folder = tempfile.mkdtemp(prefix="notify-", dir="/tmp")
    path = str(Path(folder) / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    try:
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(folder)


def drain(sock: socket.socket) -> list[bytes]:
    """Every datagram queued now. AF_UNIX delivery is synchronous: a message whose
    sendto() returned is already in this queue."""
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


def notifier_for(path: str, watchdog_usec: int | None = None) -> Notifier:
    env = {"NOTIFY_SOCKET": path}
    if watchdog_usec is not None:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
        env["WATCHDOG_PID"] = str(os.getpid())
    return Notifier.from_environ(env)


def test_address_forms() -> None:
    assert parse_address("/run/systemd/notify") == "/run/systemd/notify"
    assert parse_address("@checkin/notify") == b"\0checkin/notify"
    assert parse_address("@") is None
    assert parse_address("vsock:2:1234") is None
    assert parse_address("relative/path") is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),  # another process
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_only_when_asked_of_this_process(
    env: dict[str, str], expected: float | None
) -> None:
    assert parse_watchdog(env, pid=4242) == expected


async def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier.from_environ({"WATCHDOG_USEC": "1000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None  # no socket to ping: no watchdog either
    notifier.ready("Ready")
    notifier.status("x")
    notifier.stopping()
    async with asyncio.timeout(1):
        await notifier.watchdog()  # returns at once instead of looping


def test_variables_are_removed_so_children_do_not_inherit_them() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "1", "HOME": "/"}
    Notifier.from_environ(env)
    assert env == {"HOME": "/"}
    kept = {"NOTIFY_SOCKET": "/run/x"}
    Notifier.from_environ(kept, unset=False)
    assert kept == {"NOTIFY_SOCKET": "/run/x"}


def test_ready_status_stopping_arrive_as_systemd_reads_them(
    systemd_socket: tuple[socket.socket, str],
) -> None:
    sock, path = systemd_socket
    notifier = notifier_for(path)
    assert notifier.enabled
    notifier.ready("2 readers ready; Cobot reachable")
    notifier.status("1/2 readers ready (nfc: reconnecting)")
    notifier.extend_timeout(90)
    notifier.stopping()
    notifier.close()
    assert drain(sock) == [
        b"READY=1\nSTATUS=2 readers ready; Cobot reachable",
        b"STATUS=1/2 readers ready (nfc: reconnecting)",
        b"EXTEND_TIMEOUT_USEC=90000000",
        b"STOPPING=1\nSTATUS=Stopping",
    ]


def test_abstract_namespace_socket() -> None:
    name = f"checkin-gateway-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.setblocking(False)
    try:
        notifier = notifier_for("@" + name)
        notifier.ready()
        notifier.close()
        assert drain(sock) == [b"READY=1"]
    finally:
        sock.close()


def test_a_status_cannot_inject_other_variables(
    systemd_socket: tuple[socket.socket, str],
) -> None:
    sock, path = systemd_socket
    notifier = notifier_for(path)
    notifier.status("reader said:\nREADY=1\r\nWATCHDOG=1")
    assert drain(sock) == [b"STATUS=reader said: READY=1 WATCHDOG=1"]


def test_an_unchanged_status_is_sent_once(systemd_socket: tuple[socket.socket, str]) -> None:
    sock, path = systemd_socket
    notifier = notifier_for(path)
    notifier.ready("same")
    notifier.status("same")
    notifier.status("other")
    notifier.status("other")
    notifier.status("same")
    assert drain(sock) == [b"READY=1\nSTATUS=same", b"STATUS=other", b"STATUS=same"]


def test_a_missing_socket_is_logged_once_not_raised() -> None:
    notifier = notifier_for(f"/tmp/no-such-dir-{uuid.uuid4().hex}/notify")
    with capture_logs() as logs:
        notifier.ready()
        notifier.ping()
        notifier.ping()
    assert [e["event"] for e in logs] == ["notify_failed"]


async def test_watchdog_sleeps_half_the_timeout_between_pings(
    systemd_socket: tuple[socket.socket, str],
) -> None:
    sock, path = systemd_socket
    notifier = notifier_for(path, watchdog_usec=30_000_000)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await notifier.watchdog(sleep)
    assert slept == [15.0, 15.0, 15.0]
    assert drain(sock) == [b"WATCHDOG=1"] * 3


async def test_watchdog_pings_at_the_configured_interval(
    systemd_socket: tuple[socket.socket, str],
) -> None:
    sock, path = systemd_socket
    notifier = notifier_for(path, watchdog_usec=200_000)  # ping every 0.1 s
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(notifier.watchdog(), name="watchdog")
    arrivals: list[float] = []
    try:
        async with asyncio.timeout(10):
            while len(arrivals) < 6:
                assert await loop.sock_recv(sock, 64) == b"WATCHDOG=1"
                arrivals.append(loop.time())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # Never faster than asked (a sleep does not return early); a slow machine may be
    # later, which systemd tolerates up to the full timeout.
    assert min(gaps) >= 0.09, gaps


async def test_no_watchdog_ping_while_the_loop_is_blocked(
    systemd_socket: tuple[socket.socket, str],
) -> None:
    sock, path = systemd_socket
    notifier = notifier_for(path, watchdog_usec=100_000)  # ping every 0.05 s
    task = asyncio.create_task(notifier.watchdog(), name="watchdog")
    try:
        async with asyncio.timeout(10):
            while not drain(sock):
                await asyncio.sleep(0.01)
        # Block the loop for ten ping intervals, as a hung handler would. The pings
        # sent before are drained; none can be sent during: only the loop sends them.
        drain(sock)
        time.sleep(0.5)  # blocking the loop is the point of this test
        assert drain(sock) == []
        # Unblocked, the pings resume (systemd would have restarted us by now).
        async with asyncio.timeout(10):
            while not drain(sock):
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_status_line_reads_well() -> None:
    ready, reconnecting = ReaderState.READY, ReaderState.RECONNECTING
    assert status_line({}, online=None) == "no readers configured; Cobot not contacted yet"
    assert status_line({"rfid": ready}, online=True) == "1 reader ready; Cobot reachable"
    assert (
        status_line({"rfid": ready, "nfc": reconnecting}, online=False, queued=12)
        == "1/2 readers ready (nfc: reconnecting); Cobot unreachable, deciding offline; "
        "12 check-ins queued"
    )
    many = {f"r{i}": ReaderState.FAILED for i in range(5)}
    assert status_line(many, online=True, queued=1) == (
        "0/5 readers ready (r0: failed, r1: failed, r2: failed, +2 more); "
        "Cobot reachable; 1 check-in queued"
    )


async def test_the_daemon_reports_to_systemd(
    systemd_socket: tuple[socket.socket, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`checkin-gateway run` as systemd starts it: READY=1 with a status once up, the
    watchdog from the loop, STOPPING=1 on SIGTERM, exit 0."""
    import signal

    from gateway.cli import main
    from gateway.sim import ADMIN_TOKEN, demo_space, run_sim

    sock, path = systemd_socket
    loop = asyncio.get_running_loop()
    logging_before = structlog.get_config()  # `run` configures logging globally
    async with run_sim(demo_space()) as url:
        cfg = tmp_path / "config.toml"
        cfg.write_text(
            f'[gateway]\nstate_dir = "{tmp_path}"\nlog_level = "warning"\n'
            f'[cobot]\nbase_url = "{url}"\n'
            '[[doors]]\ntype = "command"\nname = "front"\ncommand = ["true"]\n'
        )
        monkeypatch.setenv("COBOT_ACCESS_TOKEN", ADMIN_TOKEN)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        monkeypatch.setenv("WATCHDOG_USEC", "200000")
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        daemon = asyncio.create_task(main(["run", "--config", str(cfg)]))
        messages: list[bytes] = []
        try:
            async with asyncio.timeout(20):
                while not any(m.startswith(b"READY=1") for m in messages):
                    messages.append(await loop.sock_recv(sock, 4096))
                while messages.count(b"WATCHDOG=1") < 3:
                    messages.append(await loop.sock_recv(sock, 4096))
            assert "NOTIFY_SOCKET" not in os.environ  # not passed on to door commands
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(20):
                assert await daemon == 0
        finally:
            daemon.cancel()
            await asyncio.gather(daemon, return_exceptions=True)
            structlog.configure(**logging_before)
    messages += drain(sock)
    ready = next(m for m in messages if m.startswith(b"READY=1"))
    assert ready == b"READY=1\nSTATUS=no readers configured; Cobot reachable"
    assert messages.index(ready) < len(messages) - 1
    assert messages[-1].startswith(b"STOPPING=1")
