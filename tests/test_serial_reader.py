"""SerialReader on real ttys: os.openpty() pairs and socat ptys that vanish and return.

Frames are written to the master only once the reader reports READY: pyserial flushes
the input buffer when it opens the port.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import serial
from structlog.testing import capture_logs

from gateway.config.model import SerialReaderConfig
from gateway.errors import ReaderError
from gateway.model import Direction, Tap, TokenFormat
from gateway.readers.base import ReaderState
from gateway.readers.serial import reader as reader_mod
from gateway.readers.serial.frames import encode_rdm6300
from gateway.readers.serial.reader import SerialReader
from tests.conftest import require

pytestmark = pytest.mark.real

CARD_A = bytes.fromhex("0A1B2C3D4E")
CARD_B = bytes.fromhex("6200E3AF47")
DEADLINE = 5.0  # for anything the test waits on; a pass takes milliseconds


@pytest.fixture(autouse=True)
def _have_ptys() -> None:
    require(Path("/dev/ptmx").exists(), "no /dev/ptmx: cannot make pseudo-terminals")


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = replace(reader_mod.LINK_POLICY, first_delay=0.01, cap=0.05)
    monkeypatch.setattr(reader_mod, "LINK_POLICY", fast)


class Pty:
    """A pseudo-terminal: the reader opens ``path``, the test writes to ``master``."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        self.path = os.ttyname(self._slave)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def unplug(self) -> None:
        """Close both ends: the reader's next read fails and the node goes away."""
        for fd in (self.master, self._slave):
            with suppress(OSError):
                os.close(fd)


@pytest.fixture
def pty() -> Iterator[Pty]:
    p = Pty()
    yield p
    p.unplug()


def config(port: str, **kw: Any) -> SerialReaderConfig:
    # Most tests here write a card's frame once; the confirmation rule (a second read
    # before a tap, on by default for rdm6300) has its own tests below.
    kw.setdefault("confirm_reads", 1)
    return SerialReaderConfig(name="front", port=port, **kw)


async def wait_until(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@asynccontextmanager
async def running(
    reader: SerialReader, sink: Callable[[Tap], None]
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(reader.run(sink), name="reader-under-test")
    try:
        yield task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError, ReaderError):
            await task


async def next_tap(queue: asyncio.Queue[Tap]) -> Tap:
    return await asyncio.wait_for(queue.get(), DEADLINE)


def open_fds() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


async def test_a_tap_becomes_one_tap_with_the_hex_token(pty: Pty) -> None:
    taps: asyncio.Queue[Tap] = asyncio.Queue()
    reader = SerialReader(config(pty.path, direction=Direction.OUT))
    assert reader.state is ReaderState.CONNECTING
    async with running(reader, taps.put_nowait):
        await wait_until(lambda: reader.state is ReaderState.READY, "READY")
        pty.write(b"\x00noise" + encode_rdm6300(CARD_A))
        tap = await next_tap(taps)
        assert (tap.reader, tap.token, tap.direction) == ("front", "0A1B2C3D4E", Direction.OUT)
        stats = reader.stats
        assert (stats.frames, stats.taps, stats.garbage_bytes) == (1, 1, 6)
        assert taps.empty()
    assert reader.stats.state is ReaderState.STOPPED


async def test_a_held_card_is_one_event(pty: Pty) -> None:
    taps: asyncio.Queue[Tap] = asyncio.Queue()
    # Held for 1.5 s, three times the debounce: one event only because every repeat
    # extends the hold, as a card resting on the reader should.
    reader = SerialReader(config(pty.path, debounce=0.5))
    async with running(reader, taps.put_nowait):
        await wait_until(lambda: reader.state is ReaderState.READY, "READY")
        for _ in range(30):
            pty.write(encode_rdm6300(CARD_A))
            await asyncio.sleep(0.05)
        # A second card marks the end: once its tap is here, every repeat was processed.
        pty.write(encode_rdm6300(CARD_B))
        first, second = await next_tap(taps), await next_tap(taps)
        assert (first.token, second.token) == ("0A1B2C3D4E", "6200E3AF47")
        assert reader.stats.frames == 31
        assert reader.stats.taps == 2


async def test_the_same_card_again_after_the_debounce_is_a_new_tap(pty: Pty) -> None:
    taps: asyncio.Queue[Tap] = asyncio.Queue()
    reader = SerialReader(config(pty.path, debounce=0.2))
    async with running(reader, taps.put_nowait):
        await wait_until(lambda: reader.state is ReaderState.READY, "READY")
        pty.write(encode_rdm6300(CARD_A))
        await next_tap(taps)
        await asyncio.sleep(0.3)
        pty.write(encode_rdm6300(CARD_A))
        assert (await next_tap(taps)).token == "0A1B2C3D4E"


async def test_line_protocol(pty: Pty) -> None:
    taps: asyncio.Queue[Tap] = asyncio.Queue()
    reader = SerialReader(config(pty.path, protocol="line", baudrate=115200))
    async with running(reader, taps.put_nowait):
        await wait_until(lambda: reader.state is ReaderState.READY, "READY")
        pty.write(b"  member-42 \r\n\r\n\x01\x02\r\n")
        pty.write(b"0014921")
        pty.write(b"543\n")
        assert (await next_tap(taps)).token == "member-42"
        assert (await next_tap(taps)).token == "0014921543"
        assert reader.stats.bad == 1


async def test_token_format_decimal(pty: Pty) -> None:
    taps: asyncio.Queue[Tap] = asyncio.Queue()
    reader = SerialReader(config(pty.path, token_format=TokenFormat.DECIMAL))
    async with running(reader, taps.put_nowait):
        await wait_until(lambda: reader.state is ReaderState.READY, "READY")
        pty.write(encode_rdm6300(CARD_B))
        # The number printed on the card: the 4 id bytes 00 E3 AF 47.
        assert (await next_tap(taps)).token == "0014921543"


async def test_bad_frames_and_ghosts_are_counted_not_tapped(pty: Pty) -> None:
    taps: asyncio.Queue[Tap] = asyncio.Queue()
    reader = SerialReader(config(pty.path))
    async with running(reader, taps.put_nowait):
        await wait_until(lambda: reader.state is ReaderState.READY, "READY")
        bad = bytearray(encode_rdm6300(CARD_A))
        bad[12] ^= 0x01  # flip the checksum's last digit
        pty.write(bytes(bad) + b"\x02000000000000\x03" + encode_rdm6300(CARD_B))
        assert (await next_tap(taps)).token == "6200E3AF47"
        stats = reader.stats
        assert (stats.frames, stats.bad, stats.ghosts, stats.taps) == (1, 1, 1, 1)


async def test_a_failing_sink_does_not_close_the_port(pty: Pty) -> None:
    taps: list[str] = []

    def sink(tap: Tap) -> None:
        taps.append(tap.token)
        if len(taps) == 1:
            raise RuntimeError("bug downstream")

    with capture_logs() as logs:
        reader = SerialReader(config(pty.path))
        async with running(reader, sink):
            await wait_until(lambda: reader.state is ReaderState.READY, "READY")
            pty.write(encode_rdm6300(CARD_A))
            await wait_until(lambda: len(taps) == 1, "first tap")
            pty.write(encode_rdm6300(CARD_B))
            await wait_until(lambda: len(taps) == 2, "second tap")
            assert reader.state is ReaderState.READY
    assert any(e["event"] == "serial_tap_failed" and e["exc_info"] for e in logs)


async def test_stop_closes_the_port_and_leaves_no_tasks(pty: Pty) -> None:
    before = open_fds()
    reader = SerialReader(config(pty.path))
    async with running(reader, lambda _tap: None) as task:
        await wait_until(lambda: reader.state is ReaderState.READY, "READY")
        assert open_fds() > before
    assert task.cancelled()
    assert reader.state is ReaderState.STOPPED
    assert open_fds() == before
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_second_reader_on_the_same_port_is_refused(pty: Pty) -> None:
    first = SerialReader(config(pty.path))
    second = SerialReader(config(pty.path))
    async with running(first, lambda _tap: None):
        await wait_until(lambda: first.state is ReaderState.READY, "first READY")
        async with running(second, lambda _tap: None):
            await wait_until(lambda: second.stats.last_error is not None, "second refused")
            assert second.state is ReaderState.RECONNECTING
            assert "locked by another program" in (second.stats.last_error or "")


class DrivenSleep:
    """Stands in for asyncio.sleep: records each backoff delay, runs a hook, returns."""

    def __init__(self, hook: Callable[[int], None] = lambda _n: None) -> None:
        self.delays: list[float] = []
        self._hook = hook

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self._hook(len(self.delays))
        await asyncio.sleep(0)


async def test_backoff_while_absent_then_reset_only_after_a_stable_open(
    tmp_path: Path,
) -> None:
    port = tmp_path / "rfid"  # a udev-style symlink, pointed at a fresh pty per "plug"
    ptys: list[Pty] = []

    def plug_in() -> None:
        ptys.append(Pty())
        port.unlink(missing_ok=True)
        port.symlink_to(ptys[-1].path)

    # Absent at start; plugged in during the 8th wait, and again after each unplug.
    sleep = DrivenSleep(lambda n: plug_in() if n >= 8 else None)
    now = [0.0]
    taps: asyncio.Queue[Tap] = asyncio.Queue()
    try:
        with capture_logs() as logs:
            reader = SerialReader(config(str(port)), sleep=sleep, clock=lambda: now[0])
            async with running(reader, taps.put_nowait):
                await wait_until(lambda: reader.state is ReaderState.READY, "first open")
                assert sleep.delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
                assert reader.stats.reconnects == 0

                now[0] += reader_mod.LINK_POLICY.stable_after  # open long enough to count as stable
                ptys[-1].unplug()
                await wait_until(lambda: reader.stats.reconnects == 1, "reopen")
                assert sleep.delays[8:] == [0.5]
                await wait_until(lambda: reader.state is ReaderState.READY, "READY again")
                ptys[-1].write(encode_rdm6300(CARD_A))
                assert (await next_tap(taps)).token == "0A1B2C3D4E"

                ptys[-1].unplug()  # at once: a flapping cable keeps backing off
                await wait_until(lambda: reader.stats.reconnects == 2, "second reopen")
                assert sleep.delays[9:] == [1.0]
    finally:
        for p in ptys:
            p.unplug()

    events = [(e["event"], e["log_level"]) for e in logs if e["event"].startswith("serial_reader")]
    absent = [lvl for ev, lvl in events if ev == "serial_reader_unavailable"]
    assert absent == ["warning"] + ["debug"] * 7  # warn once, then quietly retry
    lost = [lvl for ev, lvl in events if ev == "serial_reader_lost"]
    assert lost == ["warning", "debug"]  # the flap repeats a kind of this outage: quiet
    back = [lvl for ev, lvl in events if ev == "serial_reader_back"]
    assert back == ["info", "debug"]  # once per warning
    assert "does not exist" in next(
        e["error"] for e in logs if e["event"] == "serial_reader_unavailable"
    )


async def test_permission_denied_retries_then_fails_with_the_fix(pty: Pty) -> None:
    def denied(port: str, **_kw: Any) -> serial.SerialBase:
        raise serial.SerialException(errno.EACCES, f"could not open port {port}: denied")

    sleep = DrivenSleep()
    reader = SerialReader(config(pty.path), serial_factory=denied, sleep=sleep)
    with capture_logs() as logs, pytest.raises(ReaderError, match="dialout") as caught:
        await asyncio.wait_for(reader.run(lambda _tap: None), DEADLINE)
    assert isinstance(caught.value.__cause__, serial.SerialException)
    assert reader.state is ReaderState.FAILED
    assert len(sleep.delays) == reader_mod.LINK_POLICY.permission_attempts - 1
    assert any(e["event"] == "serial_reader_failed" and e["log_level"] == "error" for e in logs)


async def test_a_brief_permission_race_after_plug_in_is_retried(pty: Pty) -> None:
    calls = [0]

    def racing_udev(port: str, **kw: Any) -> serial.SerialBase:
        calls[0] += 1
        if calls[0] <= 2:  # udev has not applied the group yet
            raise serial.SerialException(errno.EACCES, f"could not open port {port}: denied")
        return serial.serial_for_url(port, **kw)

    taps: asyncio.Queue[Tap] = asyncio.Queue()
    reader = SerialReader(config(pty.path), serial_factory=racing_udev, sleep=DrivenSleep())
    async with running(reader, taps.put_nowait):
        await wait_until(lambda: reader.state is ReaderState.READY, "READY")
        pty.write(encode_rdm6300(CARD_A))
        assert (await next_tap(taps)).token == "0A1B2C3D4E"


async def test_an_unusable_port_name_fails_at_once() -> None:
    reader = SerialReader(config("nosuchscheme://x"), sleep=DrivenSleep())
    with pytest.raises(ReaderError, match="cannot open"):
        await asyncio.wait_for(reader.run(lambda _tap: None), DEADLINE)
    assert reader.state is ReaderState.FAILED


async def test_an_open_that_hangs_times_out_and_its_port_is_closed_later(
    pty: Pty, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader_mod, "OPEN_TIMEOUT", 0.05)
    release = asyncio.Event()
    loop = asyncio.get_running_loop()
    opened: list[serial.SerialBase] = []

    def hanging(port: str, **kw: Any) -> serial.SerialBase:
        # Runs in the executor: wait (in this thread) until the test lets it finish.
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(DEADLINE)
        opened.append(serial.serial_for_url(port, **kw))
        return opened[-1]

    sleep = DrivenSleep()
    reader = SerialReader(config(pty.path), serial_factory=hanging, sleep=sleep)
    async with running(reader, lambda _tap: None):
        await wait_until(lambda: bool(sleep.delays), "the open to time out")
        assert "took over" in (reader.stats.last_error or "")
        assert reader.state is not ReaderState.READY
    release.set()
    await wait_until(lambda: len(opened) >= 1 and not opened[0].is_open, "late port closed")


async def test_socket_url_reconnects_and_drops_a_half_frame(fast_backoff: None) -> None:
    """ser2net-style ``socket://``: the remote end closes, the reader dials again."""
    connections: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def accept(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        connections.put_nowait(w)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    taps: asyncio.Queue[Tap] = asyncio.Queue()
    # debounce 0: a frame glued from two connections would show up as a tap
    reader = SerialReader(config(f"socket://127.0.0.1:{port}", debounce=0))
    try:
        async with running(reader, taps.put_nowait):
            first = await asyncio.wait_for(connections.get(), DEADLINE)
            # pyserial discards input waiting at open: write only once READY.
            await wait_until(lambda: reader.state is ReaderState.READY, "READY")
            first.write(encode_rdm6300(CARD_A) + encode_rdm6300(CARD_A)[:7])
            assert (await next_tap(taps)).token == "0A1B2C3D4E"
            first.close()
            await first.wait_closed()

            second = await asyncio.wait_for(connections.get(), DEADLINE)
            await wait_until(lambda: reader.state is ReaderState.READY, "READY again")
            assert reader.stats.reconnects == 1
            second.write(encode_rdm6300(CARD_A)[7:] + encode_rdm6300(CARD_B))
            assert (await next_tap(taps)).token == "6200E3AF47"
            assert reader.stats.garbage_bytes == 14  # the half frame and its tail
            second.close()
            await second.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
def socat_pair(tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts socat with links A (the reader's port) and B (the test's end)."""
    require(shutil.which("socat") is not None, "socat not installed (Debian package socat)")
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        a, b = tmp_path / "A", tmp_path / "B"
        log = (tmp_path / f"socat{len(procs)}.log").open("wb")
        proc = subprocess.Popen(
            ["socat", "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        procs.append(proc)
        deadline = time.monotonic() + DEADLINE
        while not (a.exists() and b.exists()):
            assert proc.poll() is None, "socat exited"
            assert time.monotonic() < deadline, "socat made no links"
            time.sleep(0.01)
        return proc

    yield start
    for proc in procs:  # also when the test failed
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def write_to(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


async def test_reader_pulled_and_plugged_back_in(
    tmp_path: Path, socat_pair: Callable[[], subprocess.Popen[bytes]], fast_backoff: None
) -> None:
    taps: asyncio.Queue[Tap] = asyncio.Queue()
    socat = socat_pair()
    reader = SerialReader(config(str(tmp_path / "A")))
    async with running(reader, taps.put_nowait):
        await wait_until(lambda: reader.state is ReaderState.READY, "READY")
        write_to(tmp_path / "B", encode_rdm6300(CARD_A))
        assert (await next_tap(taps)).token == "0A1B2C3D4E"

        socat.terminate()  # the USB reader is pulled: its tty vanishes
        socat.wait(DEADLINE)
        await wait_until(lambda: reader.state is ReaderState.RECONNECTING, "RECONNECTING")
        assert not (tmp_path / "A").exists()
        assert "lost" in (reader.stats.last_error or "")

        socat_pair()  # plugged back in, same name
        await wait_until(lambda: reader.stats.reconnects == 1, "reopen")
        await wait_until(lambda: reader.state is ReaderState.READY, "READY again")
        write_to(tmp_path / "B", encode_rdm6300(CARD_B))
        assert (await next_tap(taps)).token == "6200E3AF47"
    assert reader.state is ReaderState.STOPPED


# --- What real readers send at the edges (issue 12) -------------------------------------

ID12_FRAME = bytes.fromhex("02 31 46 30 30 43 30 46 46 45 45 43 45 0D 0A 03")


async def test_id12la_reader_through_a_pty(pty: Pty) -> None:
    taps: asyncio.Queue[Tap] = asyncio.Queue()
    # The protocol's own defaults: an ID-12LA reads a card once, so no confirmation.
    reader = SerialReader(config(pty.path, protocol="id12la", confirm_reads=None))
    async with running(reader, taps.put_nowait):
        await wait_until(lambda: reader.state is ReaderState.READY, "READY")
        pty.write(b"\x00" + ID12_FRAME[:7])
        pty.write(ID12_FRAME[7:] + ID12_FRAME[:3])  # a frame split, the next one started
        assert (await next_tap(taps)).token == "1F00C0FFEE"
        stats = reader.stats
        assert (stats.frames, stats.taps, stats.garbage_bytes, stats.unconfirmed) == (1, 1, 1, 0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_phantom_frame_is_dropped_and_counted_a_held_card_taps(pty: Pty) -> None:
    taps: asyncio.Queue[Tap] = asyncio.Queue()
    clock = Clock()
    reader = SerialReader(config(pty.path, confirm_reads=None), clock=clock)  # rdm6300
    async with running(reader, taps.put_nowait):
        await wait_until(lambda: reader.state is ReaderState.READY, "READY")
        pty.write(encode_rdm6300(CARD_A))  # one frame, valid checksum, no card there
        await wait_until(lambda: reader.stats.frames == 1, "the phantom frame read")
        clock.now += 0.6  # past the 0.5 s window: it never got its second read
        assert reader.stats.unconfirmed == 1
        # A real card resting on the reader: its frame again about every 65 ms.
        for n in range(2, 5):
            pty.write(encode_rdm6300(CARD_B))
            await wait_until(lambda n=n: reader.stats.frames == n, f"frame {n}")  # type: ignore[misc]
            clock.now += 0.065
        tap = await next_tap(taps)
        assert tap.token == "6200E3AF47"
        stats = reader.stats
        assert (stats.taps, stats.unconfirmed) == (1, 1)
    assert taps.empty()


async def test_a_quick_real_tap_of_two_frames_is_a_tap(pty: Pty) -> None:
    taps: asyncio.Queue[Tap] = asyncio.Queue()
    reader = SerialReader(config(pty.path, confirm_reads=None))
    async with running(reader, taps.put_nowait):
        await wait_until(lambda: reader.state is ReaderState.READY, "READY")
        pty.write(encode_rdm6300(CARD_A))
        await asyncio.sleep(0.065)  # what the module does between two reads of a card
        pty.write(encode_rdm6300(CARD_A))
        assert (await next_tap(taps)).token == "0A1B2C3D4E"
        assert reader.stats.unconfirmed == 0


async def test_only_garbage_warns_once_naming_the_right_protocol(pty: Pty) -> None:
    reader = SerialReader(config(pty.path))  # rdm6300, but an ID-12LA is attached
    with capture_logs() as logs:
        async with running(reader, lambda _tap: None):
            await wait_until(lambda: reader.state is ReaderState.READY, "READY")
            for _ in range(10):
                pty.write(ID12_FRAME)
            await wait_until(lambda: reader.stats.garbage_bytes == 160, "all garbage read")
            assert reader.stats.frames == 0
    warnings = [e for e in logs if e["event"] == "serial_reader_garbage"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert "set protocol = 'id12la'" in warnings[0]["problem"]
    assert reader.stats.warning == warnings[0]["problem"]


async def test_wrong_baud_rate_garbage_warns_once_and_status_shows_it(pty: Pty) -> None:
    from gateway.readers.report import reader_stats_lines

    reader = SerialReader(config(pty.path, protocol="line"))
    with capture_logs() as logs:
        async with running(reader, lambda _tap: None):
            await wait_until(lambda: reader.state is ReaderState.READY, "READY")
            # What 9600 baud looks like read at another rate: bytes with the high bit,
            # control characters, line ends now and then.
            noise = bytes([0x80, 0xF8, 0x1E, 0x0A, 0xE0, 0x00, 0xFC, 0x0D] * 8)
            for _ in range(4):
                pty.write(noise)
            await wait_until(lambda: reader.stats.bad == 64, "garbage lines read")
            stats = reader.stats
    warnings = [e["problem"] for e in logs if e["event"] == "serial_reader_garbage"]
    assert len(warnings) == 1
    assert "wrong baud rate (baudrate = 9600" in warnings[0]
    status = dataclasses.asdict(stats)
    lines = reader_stats_lines(status)
    assert lines[0] == (
        f"frames 0, taps 0, garbage {stats.garbage_bytes} bytes; "
        f"dropped: {stats.bad} bad, 0 ghost, 0 unconfirmed"
    )
    assert stats.garbage_bytes == 64 * 3  # the bad lines' bytes; their line ends are not
    assert lines[-1] == f"WARNING: {warnings[0]}"


async def test_a_good_frame_first_means_no_garbage_warning(pty: Pty) -> None:
    reader = SerialReader(config(pty.path))
    with capture_logs() as logs:
        async with running(reader, lambda _tap: None):
            await wait_until(lambda: reader.state is ReaderState.READY, "READY")
            pty.write(encode_rdm6300(CARD_A))
            await wait_until(lambda: reader.stats.frames == 1, "frame")
            pty.write(b"\xff" * 200)
            await wait_until(lambda: reader.stats.garbage_bytes == 200, "garbage")
    assert not [e for e in logs if e["event"] == "serial_reader_garbage"]
    assert reader.stats.warning is None
