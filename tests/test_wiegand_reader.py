"""The Wiegand reader on a simulated chip: the kernel's gpio-sim when this kernel offers
it (through the real libgpiod), else the Python model of it in gpio_bench.py that the
GPIO door tests use. The test ids say which bench ran; a skipped ``gpio-sim`` says why."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from gateway.config.model import WiegandReaderConfig
from gateway.errors import ReaderError
from gateway.model import Tap
from gateway.readers import build_reader
from gateway.readers.base import ReaderContext, ReaderState
from gateway.readers.link import LinkPolicy
from gateway.readers.wiegand.formats import H10301, H10304, H10306, encode
from gateway.readers.wiegand.reader import WiegandReader
from tests.gpio_bench import Bench, FakeChip, open_bench

D0, D1 = 6, 7
WAIT = 5.0


@pytest.fixture(autouse=True)
def default_logging() -> Iterator[None]:
    before = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**before)


@pytest.fixture(params=["gpio-sim", "fake"])
def bench(request: pytest.FixtureRequest) -> Iterator[Bench]:
    sim = open_bench(request.param, "Wiegand reader", in_vm=False)
    try:
        yield sim
    finally:
        sim.close()


def config(bench: Bench, **changes: object) -> WiegandReaderConfig:
    base: dict[str, object] = {
        "name": "gate",
        "chip": bench.chip_path,
        "d0_line": D0,
        "d1_line": D1,
        "debounce": 0.0,
    }
    return WiegandReaderConfig(**(base | changes))  # type: ignore[arg-type]


def send(bench: Bench, value: int, length: int, *, swap: bool = False) -> None:
    """A reader's frame: one low pulse on D0 (a 0) or D1 (a 1) per bit."""
    zero, one = (D1, D0) if swap else (D0, D1)
    for i in range(length):
        line = one if (value >> (length - 1 - i)) & 1 else zero
        bench.set_input(line, False)
        bench.set_input(line, True)


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.005)
    assert condition(), what


class Running:
    def __init__(self, reader: WiegandReader) -> None:
        self.reader = reader
        self.taps: list[Tap] = []
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.reader.run(self.taps.append))
        await until(lambda: self.reader.state is ReaderState.READY, "reader ready")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


async def test_cards_of_each_length_become_taps(bench: Bench) -> None:
    reader = WiegandReader(config(bench), open_chip=bench.open_chip)
    async with Running(reader) as run:
        for frame, length in (
            (encode(H10301, 123, 4567), 26),
            (encode(H10306, 1000, 2000), 34),
            (encode(H10304, 300, 500_000), 37),
        ):
            before = len(run.taps)
            send(bench, frame, length)
            await until(lambda before=before: len(run.taps) > before, f"{length}-bit tap")  # type: ignore[misc]
        assert [t.token for t in run.taps] == ["123,04567", "01000,02000", "00300,500000"]
        assert all(t.reader == "gate" for t in run.taps)


async def test_tap_follows_the_last_bit_by_the_frame_gap(bench: Bench) -> None:
    reader = WiegandReader(config(bench, token_format="decimal"), open_chip=bench.open_chip)
    async with Running(reader) as run:
        send(bench, encode(H10301, 1, 1), 26)
        sent = time.monotonic()
        await until(lambda: bool(run.taps), "tap")
        latency = run.taps[0].mono - sent
        # Not before the 25 ms gap (the frame could still go on), soon after it.
        assert 0.024 <= latency < 0.5, latency
        assert run.taps[0].token == str((1 << 16) | 1).zfill(10)


async def test_bad_frames_are_counted_never_tapped(bench: Bench) -> None:
    reader = WiegandReader(config(bench), open_chip=bench.open_chip)
    async with Running(reader) as run:
        good = encode(H10301, 5, 6)
        send(bench, good ^ 1, 26)  # parity
        await asyncio.sleep(0.05)
        send(bench, good >> 1, 25)  # wrong length
        await asyncio.sleep(0.05)
        send(bench, 1, 1)  # power-up pulse
        await asyncio.sleep(0.05)
        send(bench, good, 26)
        await until(lambda: bool(run.taps), "the good card")
        assert [t.token for t in run.taps] == ["005,00006"]
        stats = reader.stats
        assert stats.rejected == {"parity": 1, "wrong-length": 1, "noise": 1}
        assert (stats.taps, stats.cards, stats.opens, stats.state) == (1, 1, 1, ReaderState.READY)


async def test_swapped_lines_are_reported_with_the_fix(bench: Bench) -> None:
    reader = WiegandReader(config(bench), open_chip=bench.open_chip)
    with capture_logs() as logs:
        async with Running(reader) as run:
            for _ in range(2):
                send(bench, encode(H10301, 7, 8), 26, swap=True)
                await asyncio.sleep(0.05)
            await until(lambda: reader.stats.swapped_suspected, "swapped reported")
            assert run.taps == []
    (entry,) = [e for e in logs if e["event"] == "wiegand_lines_swapped"]
    assert "Swap d0_line and d1_line" in entry["hint"]


async def test_keypad_pin(bench: Bench) -> None:
    reader = WiegandReader(config(bench, keypad=True), open_chip=bench.open_chip)
    async with Running(reader) as run:
        for key in (4, 2, 11):  # "4", "2", "#"
            send(bench, ((key ^ 0xF) << 4) | key, 8)
            await asyncio.sleep(0.04)
        await until(lambda: bool(run.taps), "PIN tap")
        assert [t.token for t in run.taps] == ["42"]


async def test_overflow_of_the_kernel_queue_discards_the_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The model's queue drops its oldest edge when full, as gpiolib-cdev does. With a
    # 30-edge queue, two frames sent before the loop reads (52 edges) leave the last 4
    # edges of the first frame (a gap in the sequence numbers) and the whole second.
    monkeypatch.setattr("gateway.readers.wiegand.reader.EVENT_BUFFER", 30)
    bench = FakeChip()
    shift = [0]
    clock = lambda: time.monotonic_ns() + shift[0]  # noqa: E731
    bench.clock_ns = clock
    try:
        reader = WiegandReader(config(bench), open_chip=bench.open_chip, clock_ns=clock)
        with capture_logs() as logs:
            async with Running(reader) as run:
                send(bench, encode(H10301, 1, 2), 26)
                shift[0] += 100_000_000  # the next frame 100 ms later, kernel time
                send(bench, encode(H10301, 3, 4), 26)
                await until(lambda: bool(run.taps), "the second card")
                assert [t.token for t in run.taps] == ["003,00004"]
                assert reader.stats.rejected == {"overflow": 1}
        dropped = [e for e in logs if e["event"] == "wiegand_frame_dropped"]
        assert [(e["reason"], e["bits"]) for e in dropped] == [("overflow", 4)]
    finally:
        bench.close()


async def test_missing_chip_and_busy_lines() -> None:
    bench = FakeChip()
    try:
        missing = WiegandReader(
            config(bench, chip="/dev/gpiochip-absent"),
            open_chip=bench.open_chip,
            policy=LinkPolicy(first_delay=0.01, cap=0.01),
        )
        task = asyncio.create_task(missing.run(lambda tap: None))
        await until(lambda: missing.state is ReaderState.RECONNECTING, "retrying")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        first = WiegandReader(config(bench), open_chip=bench.open_chip)
        async with Running(first):
            second = WiegandReader(
                config(bench),
                open_chip=bench.open_chip,
                policy=LinkPolicy(first_delay=0.01, cap=0.01),
            )
            with capture_logs() as logs:
                task = asyncio.create_task(second.run(lambda tap: None))
                await until(lambda: second.state is ReaderState.RECONNECTING, "busy")
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            assert any("in use by another program" in str(e.get("error")) for e in logs)
    finally:
        bench.close()


async def test_unknown_line_is_final() -> None:
    bench = FakeChip()
    reader = WiegandReader(config(bench, d0_line="NOPE"), open_chip=bench.open_chip)
    with pytest.raises(ReaderError, match="no line 'NOPE'"):
        await reader.run(lambda tap: None)
    assert reader.state is ReaderState.FAILED


def test_build_reader_registers_wiegand(tmp_path: object) -> None:
    cfg = WiegandReaderConfig(name="w", d0_line=17, d1_line=27)
    ctx = ReaderContext(state_dir=tmp_path, lookup=lambda token: None)  # type: ignore[arg-type]
    assert isinstance(build_reader(cfg, ctx), WiegandReader)
