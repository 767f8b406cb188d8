"""The reader's life cycle without a network: permission, backoff, storage, stopping.
(Packets on a real link: ``test_mac_netns.py``.)"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway.config.model import MacReaderConfig
from gateway.errors import ReaderError
from gateway.model import Tap
from gateway.readers import build_reader
from gateway.readers.base import ReaderContext, ReaderState
from gateway.readers.mac import reader as reader_module
from gateway.readers.mac.reader import MacReader
from gateway.readers.mac.sniff import NotEthernetError

CFG = MacReaderConfig(name="wifi", interface="wlan0")


def ctx(state_dir: Path) -> ReaderContext:
    return ReaderContext(state_dir=state_dir, lookup=lambda _token: None)


class Opener:
    """Fails as told, counting attempts."""

    def __init__(self, *errors: OSError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, interface: str) -> socket.socket:
        assert interface == "wlan0"
        self.calls += 1
        raise self.errors.pop(0) if len(self.errors) > 1 else self.errors[0]


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def enodev() -> OSError:
    return OSError(errno.ENODEV, "No such device")


def eperm() -> PermissionError:
    return PermissionError(errno.EPERM, "Operation not permitted")


def taps() -> list[Tap]:
    return []


def test_build_reader_makes_a_mac_reader(tmp_path: Path) -> None:
    reader = build_reader(CFG, ctx(tmp_path))
    assert isinstance(reader, MacReader)
    assert reader.name == "wifi"
    assert reader.state is ReaderState.CONNECTING


async def test_without_cap_net_raw_run_fails_at_once_and_says_how_to_fix(tmp_path: Path) -> None:
    sleeps = Sleeps()
    reader = MacReader(CFG, ctx(tmp_path), opener=Opener(eperm()), sleep=sleeps)
    got = taps()
    with pytest.raises(ReaderError) as info:
        await asyncio.wait_for(reader.run(got.append), 5)
    message = str(info.value)
    assert "CAP_NET_RAW" in message
    assert "AmbientCapabilities=CAP_NET_RAW" in message
    assert "CapabilityBoundingSet" in message
    assert "wlan0" in message
    assert isinstance(info.value.__cause__, PermissionError)
    assert reader.state is ReaderState.FAILED
    assert sleeps.delays == []
    assert not (tmp_path / "presence-wifi.sqlite").exists()  # failed before touching state


async def test_missing_interface_is_retried_with_capped_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader_module, "LINK_POLICY", replace(reader_module.LINK_POLICY, cap=8.0))
    sleeps = Sleeps()
    opener = Opener(*[enodev()] * 7, eperm())  # the capability is dropped later, say
    reader = MacReader(CFG, ctx(tmp_path), opener=opener, sleep=sleeps)
    with capture_logs() as logs, pytest.raises(ReaderError):
        await asyncio.wait_for(reader.run(taps().append), 5)
    assert opener.calls == 8
    assert sleeps.delays == [1, 2, 4, 8, 8, 8, 8]
    missing = [e for e in logs if e["event"] == "mac_reader_unavailable"]
    assert {e["problem"] for e in missing} == {"no-interface"}
    assert [e["log_level"] for e in missing] == ["warning"] + ["debug"] * 6
    assert reader.state is ReaderState.FAILED
    stats = reader.stats
    assert stats.state is ReaderState.FAILED
    assert stats.last_error is not None
    assert "CAP_NET_RAW" in stats.last_error


async def test_not_an_ethernet_interface_fails(tmp_path: Path) -> None:
    reader = MacReader(CFG, ctx(tmp_path), opener=Opener(NotEthernetError("wlan0 is not Ethernet")))
    with pytest.raises(ReaderError, match="not Ethernet"):
        await reader.run(taps().append)
    assert reader.state is ReaderState.FAILED


async def test_unusable_state_dir_fails_the_reader(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    reader = MacReader(CFG, ctx(blocker), opener=Opener(enodev()), sleep=Sleeps())
    with pytest.raises(ReaderError, match="cannot open the presence table"):
        await reader.run(taps().append)
    assert reader.state is ReaderState.FAILED


async def test_cancel_stops_cleanly(tmp_path: Path) -> None:
    waiting = asyncio.Event()

    async def sleep(_delay: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    reader = MacReader(CFG, ctx(tmp_path), opener=Opener(enodev()), sleep=sleep)
    before = asyncio.all_tasks()
    task = asyncio.create_task(reader.run(taps().append))
    await asyncio.wait_for(waiting.wait(), 5)
    assert reader.state is ReaderState.RECONNECTING
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reader.state is ReaderState.STOPPED
    assert asyncio.all_tasks() == before  # the sweeper is gone too
    assert (tmp_path / "presence-wifi.sqlite").exists()


async def test_run_twice_at_once_is_a_bug(tmp_path: Path) -> None:
    reader = MacReader(CFG, ctx(tmp_path), opener=Opener(enodev()), sleep=Sleeps())
    first = asyncio.create_task(reader.run(taps().append))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already running"):
        await reader.run(taps().append)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_failing_sweep_is_logged_and_the_next_one_runs(tmp_path: Path) -> None:
    waiting = asyncio.Event()

    async def sleep(_delay: float) -> None:
        await asyncio.Event().wait()  # the link stays down; the sweeper works regardless

    reader = MacReader(
        CFG, ctx(tmp_path), opener=Opener(enodev()), sleep=sleep, sweep_interval=0.01
    )
    calls = 0

    def sweep() -> list[object]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        waiting.set()
        return []

    reader.presence.sweep = sweep  # type: ignore[method-assign]
    with capture_logs() as logs:
        task = asyncio.create_task(reader.run(taps().append))
        await asyncio.wait_for(waiting.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["mac_sweep_failed"]


class Pullable:
    """A socket-like link the test can pull: readable at once, then ``recvfrom`` fails
    with ENETDOWN as a packet socket does when its interface goes down."""

    def __init__(self) -> None:
        self._ours, self._peer = socket.socketpair()
        self._ours.setblocking(False)

    def fileno(self) -> int:
        return self._ours.fileno()

    def recvfrom(self, _size: int) -> tuple[bytes, object]:
        self._ours.recv(16)
        raise OSError(errno.ENETDOWN, "Network is down")

    def pull(self) -> None:
        self._peer.send(b"x")

    def close(self) -> None:
        self._ours.close()
        self._peer.close()


async def test_backoff_starts_over_only_after_the_socket_lived_stable_after(
    tmp_path: Path,
) -> None:
    now = [0.0]
    delays: list[float] = []
    links: list[Pullable] = []

    def opener(interface: str) -> socket.socket:
        if len(delays) < 3:  # Wi-Fi still coming up at boot
            raise enodev()
        links.append(Pullable())
        return links[-1]  # type: ignore[return-value]

    async def sleep(delay: float) -> None:
        delays.append(delay)
        now[0] += delay
        await asyncio.sleep(0)

    reader = MacReader(CFG, ctx(tmp_path), opener=opener, sleep=sleep, link_clock=lambda: now[0])
    with capture_logs() as logs:
        task = asyncio.create_task(reader.run(taps().append))
        try:
            await asyncio.wait_for(_until(lambda: reader.state is ReaderState.READY), 5)
            assert delays == [1.0, 2.0, 4.0]
            now[0] += reader_module.LINK_POLICY.stable_after
            links[-1].pull()
            await asyncio.wait_for(_until(lambda: reader.stats.reconnects == 1), 5)
            assert delays[3:] == [1.0]
            links[-1].pull()  # at once: a flapping link backs off further
            await asyncio.wait_for(_until(lambda: reader.stats.reconnects == 2), 5)
            assert delays[4:] == [2.0]
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    lines = [(e["event"], e["log_level"]) for e in logs if e["event"].startswith("mac_reader_")]
    assert lines == [
        ("mac_reader_unavailable", "warning"),
        ("mac_reader_unavailable", "debug"),
        ("mac_reader_unavailable", "debug"),
        ("mac_reader_ready", "info"),
        ("mac_reader_lost", "warning"),
        ("mac_reader_back", "info"),
        ("mac_reader_lost", "debug"),
        ("mac_reader_back", "debug"),
    ]
    stats = reader.stats
    assert (stats.opens, stats.failures, stats.last_error) == (3, 5, "wlan0: Network is down")


async def _until(cond: Callable[[], bool]) -> None:
    while not cond():
        await asyncio.sleep(0.001)
