"""The Wiegand reader on a simulated chip: the kernel's gpio-sim when this kernel offers
it (through the real libgpiod: the test VM, tests/vm/, runs these), else the Python model
of it in gpio_bench.py that the GPIO door tests use. The test ids say which bench ran; a
skipped ``gpio-sim`` says why.

How the bench makes a frame on gpio-sim: one low pulse per bit through the simulator's
``pull`` attributes, each pulse a falling edge the kernel stamps and numbers in its
interrupt handler and queues from the line's interrupt thread. A line's next edge must
wait until that thread has queued the last one, or the kernel keeps only the later edge
(a skipped sequence number: the reader rightly discards the frame). On real hardware
that thread runs within microseconds; under the test VM's software emulation it takes
~1 ms, up to ~11 ms: pulses driven back to back (the first bench did that) lost edges in
every frame. So ``send`` paces the bits as a slow reader does: a pulse on a line once the
reader has read that line's last edge, which here gives bits ~0.5-5 ms apart (the
standard allows 0.2-20 ms) and pulses of a few hundred us (only the falling edge counts). A frame whose bits the
emulator stalled 25 ms or more apart is two frames to any reader: the bench notes it
(``Running.spoiled``) and sends the frame again.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from gateway.config.model import WiegandReaderConfig
from gateway.doors.gpio_lines import ChipLike, OpenChip, RequestLike
from gateway.errors import ReaderError
from gateway.gpiochip import open_chip_by_name
from gateway.model import Tap
from gateway.readers import build_reader
from gateway.readers.base import ReaderContext, ReaderState
from gateway.readers.link import LinkPolicy
from gateway.readers.wiegand import reader as wiegand_reader
from gateway.readers.wiegand.formats import H10301, H10304, H10306, encode
from gateway.readers.wiegand.frames import FRAME_GAP_NS
from gateway.readers.wiegand.reader import WiegandReader
from tests.gpio_bench import Bench, FakeChip, open_bench

D0, D1 = 6, 7
WAIT = 5.0
MS = 1_000_000


@pytest.fixture(autouse=True)
def default_logging() -> Iterator[None]:
    before = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**before)


@pytest.fixture(params=["gpio-sim", "fake"])
def bench(request: pytest.FixtureRequest) -> Iterator[Bench]:
    sim = open_bench(request.param, "Wiegand reader")
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


# --- watching what the reader reads --------------------------------------------------


class EdgeSpy:
    """Opens the bench's chip for the reader and keeps a copy of every edge event the
    reader reads from its line request (the kernel's own, on gpio-sim): the bench paces
    its pulses by them and the tests read the kernel's timestamps and numbers."""

    def __init__(self, bench: Bench) -> None:
        self._open: OpenChip = bench.open_chip or open_chip_by_name
        self.events: list[Any] = []
        self.on_line: Counter[int] = Counter()  # edges read, by line offset
        self.read = asyncio.Event()

    def open_chip(self, name: str) -> ChipLike:
        return _SpyChip(self._open(name), self)


class _SpyChip:
    def __init__(self, chip: ChipLike, spy: EdgeSpy) -> None:
        self._chip = chip
        self._spy = spy

    def line_offset_from_id(self, id: str | int) -> int:
        return self._chip.line_offset_from_id(id)

    def request_lines(self, config: dict[Any, Any], **kwargs: Any) -> RequestLike:
        return _SpyRequest(self._chip.request_lines(config, **kwargs), self._spy)

    def close(self) -> None:
        self._chip.close()


class _SpyRequest:
    def __init__(self, request: RequestLike, spy: EdgeSpy) -> None:
        self._request = request
        self._spy = spy

    @property
    def fd(self) -> int:
        return self._request.fd

    def get_value(self, line: int | str) -> Any:
        return self._request.get_value(line)

    def set_value(self, line: int | str, value: Any) -> None:
        self._request.set_value(line, value)

    def read_edge_events(self, max_events: int | None = None) -> list[Any]:
        events = self._request.read_edge_events(max_events)
        self._spy.events += events
        self._spy.on_line.update(e.line_offset for e in events)
        self._spy.read.set()
        return events

    def release(self) -> None:
        self._request.release()


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.005)
    assert condition(), what


class Running:
    """A reader on the bench, reading in a task, its taps collected."""

    def __init__(self, bench: Bench, **changes: object) -> None:
        self.bench = bench
        self.spy = EdgeSpy(bench)
        self.reader = WiegandReader(config(bench, **changes), open_chip=self.spy.open_chip)
        self.taps: list[Tap] = []
        self.task: asyncio.Task[None] | None = None
        self.spoiled = 0  # frames the bench could not make valid (see the module doc)

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.reader.run(self.taps.append))
        await until(lambda: self.reader.state is ReaderState.READY, "reader ready")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    async def _read(self, line: int, count: int) -> None:
        """Until the reader has read ``count`` edges of ``line`` in all."""
        async with asyncio.timeout(WAIT):
            while self.spy.on_line[line] < count:
                self.spy.read.clear()
                await self.spy.read.wait()

    async def send(
        self,
        value: int,
        length: int,
        *,
        swap: bool = False,
        pauses: dict[int, float] | None = None,
        patience: float = 60.0,
    ) -> list[int]:
        """A reader's frame: a pulse on D0 for a 0, on D1 for a 1, first bit first;
        ``pauses`` holds the bit with that index back until that many seconds after the
        kernel's timestamp of the bit before it. A line's pulse waits until the reader
        has read that line's last edge (the module doc says why); D0's and D1's may
        reach the reader out of order, as on real hardware. Returns the kernel's
        timestamps of the frame's edges, in the kernel's order. A frame the bench
        stalled 25 ms or more between two bits (an emulator's hiccup, not a pause asked
        for), which the reader rightly took for two, is sent again, for up to
        ``patience`` seconds (a heavily loaded host stalls the emulated guest often)."""
        zero, one = (D1, D0) if swap else (D0, D1)
        pauses = pauses or {}
        give_up = time.monotonic() + patience
        while True:
            start = len(self.spy.events)
            made = {line: self.spy.on_line[line] for line in (D0, D1)}
            lines = [one if (value >> (length - 1 - i)) & 1 else zero for i in range(length)]
            for i, line in enumerate(lines):
                if i in pauses:  # from the last edge, by the kernel's clock (monotonic)
                    await self._read(lines[i - 1], made[lines[i - 1]])
                    last = max(e.timestamp_ns for e in self.spy.events[start:])
                    await asyncio.sleep(last / 1e9 + pauses[i] - time.monotonic())
                await self._read(line, made[line])
                self.bench.set_input(line, False)
                self.bench.set_input(line, True)
                made[line] += 1
            for line in (D0, D1):
                await self._read(line, made[line])
            edges = sorted(self.spy.events[start:], key=lambda e: e.global_seqno)
            assert [e.line_offset for e in edges] == lines, "the bench lost an edge"
            stamps = [e.timestamp_ns for e in edges]
            stalls = [
                b - a
                for i, (a, b) in enumerate(itertools.pairwise(stamps), start=1)
                if i not in pauses and b - a >= FRAME_GAP_NS
            ]
            if not stalls:
                return stamps
            self.spoiled += 1
            print(f"bench: bits {max(stalls) / MS:.1f} ms apart (emulation?), frame sent again")
            await self.settle()
            if time.monotonic() > give_up:
                pytest.fail(
                    f"the bench stalled every frame for {patience:.0f} s (host overloaded?)"
                )

    async def settle(self) -> None:
        """Until the reader has ended the frame being sent (its gap has passed)."""
        await asyncio.sleep((FRAME_GAP_NS + wiegand_reader.LATE_EDGE_MAX_NS) / 1e9 + 0.02)


# --- frames on the bench ---------------------------------------------------------------


@pytest.mark.real
async def test_cards_of_each_length_become_taps(bench: Bench) -> None:
    async with Running(bench) as run:
        for frame, length in (
            (encode(H10301, 123, 4567), 26),
            (encode(H10306, 1000, 2000), 34),
            (encode(H10304, 300, 500_000), 37),
        ):
            before = len(run.taps)
            await run.send(frame, length)
            await until(lambda before=before: len(run.taps) > before, f"{length}-bit tap")  # type: ignore[misc]
        assert [t.token for t in run.taps] == ["123,04567", "01000,02000", "00300,500000"]
        assert all(t.reader == "gate" for t in run.taps)
        # Every edge came from the kernel's queue, numbered from 1 with none lost; on
        # gpio-sim, D0's and D1's sometimes in another order (their interrupt threads).
        seqnos = [e.global_seqno for e in run.spy.events]
        assert sorted(seqnos) == list(range(1, len(seqnos) + 1))
        late = sum(b < a for a, b in itertools.pairwise(seqnos))
        print(f"{bench.kind}: {len(seqnos)} edges, {late} read out of the kernel's order")
        if not run.spoiled:
            assert len(seqnos) == 26 + 34 + 37


@pytest.mark.real
async def test_tap_follows_the_last_bit_by_the_frame_gap(bench: Bench) -> None:
    async with Running(bench, token_format="decimal") as run:
        stamps = await run.send(encode(H10301, 1, 1), 26)
        await until(lambda: bool(run.taps), "tap")
        latency = run.taps[0].mono - stamps[-1] / 1e9  # from the kernel's last edge
        # Not before the 25 ms gap (the frame could still go on), soon after it.
        assert FRAME_GAP_NS / 1e9 <= latency < 0.5, latency
        assert run.taps[0].token == str((1 << 16) | 1).zfill(10)


@pytest.mark.real
async def test_pauses_near_the_25ms_end_of_frame_limit(bench: Bench) -> None:
    """A pause of 20 ms between two bits (the longest the standard allows) keeps one
    frame; 27 ms (past the 25 ms gap) ends it: two halves, both dropped, no tap. The
    pause is judged by the kernel's timestamps of the two edges around it."""
    card = encode(H10301, 42, 4242)
    async with Running(bench) as run:
        gaps = []
        for _ in range(30):
            stamps = await run.send(card, 26, pauses={13: 0.020})
            gaps.append(gap := stamps[13] - stamps[12])
            assert gap >= 20 * MS
            if gap < FRAME_GAP_NS:
                break
            # The emulator stretched the pause past the gap: that frame was rightly cut.
            await run.settle()
            assert run.taps == []
        else:
            pytest.fail(f"the bench could not make a pause under 25 ms: {[g / MS for g in gaps]}")
        await until(lambda: bool(run.taps), "the card with a 20 ms pause")
        assert [t.token for t in run.taps] == ["042,04242"]

        await run.settle()
        before, spoiled = run.reader.stats.rejected, run.spoiled
        stamps = await run.send(card, 26, pauses={13: 0.027})
        assert stamps[13] - stamps[12] >= FRAME_GAP_NS
        await run.settle()
        assert [t.token for t in run.taps] == ["042,04242"]  # no second tap
        after = run.reader.stats.rejected
        if run.spoiled == spoiled:  # else a stalled frame's pieces are in the counts too
            assert after == before | {"wrong-length": before.get("wrong-length", 0) + 2}


async def test_a_bit_stamped_inside_the_gap_but_queued_late_joins_its_frame() -> None:
    """The kernel queues an edge from the line's interrupt thread, which a busy system
    runs late: here every edge reaches the reader 8 ms after its timestamp. The last
    bit, stamped 22 ms after the one before (inside the 25 ms gap), arrives 30 ms after
    it: the reader waits for it as long as edges have lately taken, so the card is
    whole (a fixed 2 ms wait would have cut it to 25 bits)."""
    bench = FakeChip()
    bench.clock_ns = lambda: time.monotonic_ns() - 8 * MS
    try:
        async with Running(bench) as run:
            stamps = await run.send(encode(H10301, 77, 777), 26, pauses={25: 0.030})
            assert 20 * MS <= stamps[25] - stamps[24] < FRAME_GAP_NS
            await until(lambda: bool(run.taps), "the card")
            assert [t.token for t in run.taps] == ["077,00777"]
            assert run.reader.stats.rejected == {}
    finally:
        bench.close()


@pytest.mark.real
async def test_bad_frames_are_counted_never_tapped(bench: Bench) -> None:
    async with Running(bench) as run:
        good = encode(H10301, 5, 6)
        await run.send(good ^ 1, 26)  # parity
        await run.settle()
        await run.send(good >> 1, 25)  # wrong length
        await run.settle()
        await run.send(1, 1)  # power-up pulse
        await run.settle()
        await run.send(good, 26)
        await until(lambda: bool(run.taps), "the good card")
        assert [t.token for t in run.taps] == ["005,00006"]
        stats = run.reader.stats
        expected = {"parity": 1, "wrong-length": 1, "noise": 1}
        if run.spoiled:  # the halves of a stalled frame are dropped too
            assert all(stats.rejected.get(k, 0) >= n for k, n in expected.items()), stats
        else:
            assert stats.rejected == expected
        assert (stats.taps, stats.cards, stats.opens, stats.state) == (1, 1, 1, ReaderState.READY)


@pytest.mark.real
async def test_swapped_lines_are_reported_with_the_fix(bench: Bench) -> None:
    with capture_logs() as logs:
        async with Running(bench) as run:
            sent = 0
            while sent < 2 + run.spoiled:  # the halves of a stalled frame break the run
                await run.send(encode(H10301, 7, 8), 26, swap=True)
                await run.settle()
                sent += 1
            await until(lambda: run.reader.stats.swapped_suspected, "swapped reported")
            assert run.taps == []
    (entry,) = [e for e in logs if e["event"] == "wiegand_lines_swapped"]
    assert "Swap d0_line and d1_line" in entry["hint"]


@pytest.mark.real
async def test_keypad_pin(bench: Bench) -> None:
    async with Running(bench, keypad=True) as run:
        for _ in range(3):
            spoiled = run.spoiled
            for key in (10, 4, 2, 11):  # "*" (clear), "4", "2", "#"
                await run.send(((key ^ 0xF) << 4) | key, 8)
                await run.settle()
            if run.spoiled == spoiled:  # else a stalled frame's halves were keys too
                break
        await until(lambda: bool(run.taps), "PIN tap")
        assert [t.token for t in run.taps] == ["42"] or run.spoiled, run.taps
        assert run.taps[-1].token == "42"


@pytest.mark.real
async def test_a_burst_that_overflows_the_kernels_event_queue(bench: Bench) -> None:
    """42 cards (1,092 edges) while the loop is blocked: more than the reader's kernel
    queue holds (``EVENT_BUFFER``, 1,024 edges). The kernel drops the oldest edges; the
    reader sees the hole in the sequence numbers, drops the frame it cut and decodes
    every whole card after it, in order, guessing nothing."""
    cards = [encode(H10301, 9, 100 + i) for i in range(42)]
    assert len(cards) * 26 > wiegand_reader.EVENT_BUFFER
    # gpio-sim: give each line's interrupt thread time to queue an edge before that
    # line's next one (see the module doc); the model queues at once.
    pace = 0.002 if bench.kind == "gpio-sim" else 0.0
    async with Running(bench) as run:
        for value in cards:  # blocking: the reader cannot read meanwhile
            for i in range(26):
                line = D1 if (value >> (25 - i)) & 1 else D0
                bench.set_input(line, False)
                bench.set_input(line, True)
                time.sleep(pace)
            time.sleep(0.030)  # > the 25 ms gap: one frame per card, by kernel time
        total = len(cards) * 26
        await until(
            lambda: any(e.global_seqno == total for e in run.spy.events), "the last edge read"
        )  # fmt: skip
        await run.settle()
        read = {e.global_seqno for e in run.spy.events}
        # The queue overflowed: it held the newest 1,024 edges, the oldest are gone.
        assert len(run.spy.events) == wiegand_reader.EVENT_BUFFER
        assert min(read) > 1
        assert max(read) == total

        # The rule, on the kernel's numbers and timestamps: a card is tapped when all its
        # edges were read, none is missing on either side of it (a lost edge between
        # two frames could belong to either), and no two of its bits are 25 ms apart
        # (the emulator can stall the bench that long: then the bench made two frames,
        # each dropped). Edges the kernel lost inside the burst other than by the
        # overflow (gpio-sim under emulation, module doc) cost their frames the same way.
        stamp = {e.global_seqno: e.timestamp_ns for e in run.spy.events}

        def whole(i: int) -> bool:
            first, last = 26 * i + 1, 26 * i + 26
            around = range(max(first - 1, 1), min(last + 1, total) + 1)
            return all(s in read for s in around)

        def stalled(i: int) -> bool:
            mine = [stamp[s] for s in range(26 * i + 1, 26 * i + 27) if s in stamp]
            return any(b - a >= FRAME_GAP_NS for a, b in itertools.pairwise(mine))

        # An edge that reached the reader after a later-numbered one (interrupt threads)
        # at the start of a frame costs the frame before it (its tail could be lost):
        # such cards may be missing, never wrong.
        order = [e.global_seqno for e in run.spy.events]
        late = {
            s for s, later in zip(order, itertools.accumulate(order, max), strict=True) if s < later
        }

        def late_near(i: int) -> bool:
            return any(s in late for s in range(26 * i, 26 * i + 28))

        cards_read = [i for i in range(len(cards)) if whole(i) and not stalled(i)]
        may = [f"009,{100 + i:05d}" for i in cards_read]
        sure = [f"009,{100 + i:05d}" for i in cards_read if not late_near(i)]
        assert sure, f"the bench lost too many edges: {sorted(read)}"
        await until(lambda: len(run.taps) >= len(sure), "the whole cards")
        await run.settle()
        tokens = [t.token for t in run.taps]
        assert set(sure) <= set(tokens) <= set(may)
        assert tokens == [t for t in may if t in tokens]  # in order, each once
        stats = run.reader.stats
        assert stats.rejected["overflow"] >= 1
        if not any(stalled(i) for i in range(len(cards))):
            assert set(stats.rejected) == {"overflow"}, stats.rejected
        print(
            f"burst on {bench.kind}: {len(read)} of {total} edges read, "
            f"{len(tokens)} cards ({len(may)} whole), {len(late)} edges late, "
            f"dropped {stats.rejected}"
        )


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
        async with Running(bench):
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
