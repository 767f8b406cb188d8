"""Wiegand and keyboard-wedge (HID) readers: decoder throughput, edge-to-tap latency,
memory.

- Decoder: frames decoded per second on one core (``decode`` alone), and the whole
  path from kernel edges to a token (splitter, decoder, session), for 26/34/37 bits.
- Edge-to-tap latency on the GPIO model of tests/gpio_bench.py (this VM has no
  gpio-sim): from the kernel timestamp of a frame's last bit to the tap handed to the
  sink, through libgpiod's event objects, the loop's add_reader and the end-of-frame
  timer. Bounded below by the 25 ms end-of-frame gap; target under 30 ms.
- RSS of a process running one Wiegand reader (on the model) and one HID reader (on a
  pipe device fed with evdev's InputEvent objects: no /dev/uinput here), after 1,000
  taps each.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections.abc import Callable

from bench.common import pct, rss_mib

FRAMES = 50_000
REPEATS = 5
LATENCY_FRAMES = 60
TAPS = 1_000


def _frames() -> list[tuple[int, int]]:
    from gateway.readers.wiegand.formats import H10301, H10304, H10306, encode

    rng = random.Random(26)
    out = []
    for _ in range(FRAMES):
        layout = rng.choice((H10301, H10306, H10304))
        facility = rng.randrange(1 << layout.facility.width) if layout.facility else 0
        out.append((encode(layout, facility, rng.randrange(1 << layout.card.width)), layout.length))
    return out


def _decode_rate(frames: list[tuple[int, int]]) -> float:
    from gateway.readers.wiegand.formats import decode, formats_for

    formats = formats_for("auto")
    rates = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for value, length in frames:
            decode(value, length, formats)
        rates.append(len(frames) / (time.perf_counter() - start))
    return statistics.median(rates)


def _edges_rate(frames: list[tuple[int, int]]) -> float:
    """Edges (bit, timestamp, seqno) through splitter + decoder + session to tokens."""
    from gateway.readers.wiegand.formats import formats_for
    from gateway.readers.wiegand.frames import FrameSplitter
    from gateway.readers.wiegand.session import WiegandSession, WiegandTokenFormat

    edges = []
    t, seq = 0, 0
    for value, length in frames[:10_000]:
        for i in range(length):
            seq += 1
            t += 2_000_000
            edges.append(((value >> (length - 1 - i)) & 1, t, seq))
        t += 100_000_000
    rates = []
    for _ in range(REPEATS):
        splitter = FrameSplitter()
        session = WiegandSession("bench", formats_for("auto"), WiegandTokenFormat.FACILITY_CARD)
        tokens = 0
        start = time.perf_counter()
        for bit, ts, sq in edges:
            frame = splitter.feed(bit, ts, sq)
            if frame is not None and session.frame(frame) is not None:
                tokens += 1
        rates.append(10_000 / (time.perf_counter() - start))
        assert tokens == 10_000 - 1  # the last frame waits for its gap
    return statistics.median(rates)


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110 - the model has no event to wait on
            await asyncio.sleep(0.001)


async def _latency() -> list[float]:
    from gateway.config.model import WiegandReaderConfig
    from gateway.model import Tap
    from gateway.readers.wiegand.formats import H10301, encode
    from gateway.readers.wiegand.reader import WiegandReader
    from tests.gpio_bench import FakeChip

    bench = FakeChip()
    cfg = WiegandReaderConfig(name="w", chip=bench.chip_path, d0_line=6, d1_line=7, debounce=0)
    reader = WiegandReader(cfg, open_chip=bench.open_chip)
    taps: list[Tap] = []
    task = asyncio.create_task(reader.run(taps.append))
    await _until(lambda: 6 in bench.requests)
    latencies = []
    for n in range(LATENCY_FRAMES):
        value = encode(H10301, 1, n)
        for i in range(26):
            line = 7 if (value >> (25 - i)) & 1 else 6
            bench.set_input(line, False)
            bench.set_input(line, True)
            if i % 8 == 7:
                await asyncio.sleep(0.002)  # let the loop read mid-frame, as on a Pi
        last_ns = time.monotonic_ns()  # the model stamps edges with this clock
        await _until(lambda n=n: len(taps) > n)  # type: ignore[misc]
        latencies.append((taps[n].mono * 1e9 - last_ns) / 1e6)
        await asyncio.sleep(0.03)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    bench.close()
    return latencies


async def _rss() -> tuple[float, float]:
    before = rss_mib(os.getpid())
    from evdev import InputEvent, ecodes

    from gateway.config.model import HidReaderConfig, WiegandReaderConfig
    from gateway.model import Tap
    from gateway.readers.hid.reader import HidReader
    from gateway.readers.wiegand.formats import H10301, encode
    from gateway.readers.wiegand.reader import WiegandReader
    from tests.gpio_bench import FakeChip
    from tests.input_bench import EventDevice

    chip = FakeChip()
    wiegand = WiegandReader(
        WiegandReaderConfig(name="w", chip=chip.chip_path, d0_line=6, d1_line=7, debounce=0),
        open_chip=chip.open_chip,
    )
    device = EventDevice("/dev/input/bench")
    hid = HidReader(
        HidReaderConfig(name="h", device="/dev/input/bench", debounce=0),
        open_device=lambda path: device,  # type: ignore[arg-type,return-value]
    )
    taps: list[Tap] = []
    tasks = [asyncio.create_task(r.run(taps.append)) for r in (wiegand, hid)]
    await _until(lambda: 6 in chip.requests)
    shift = [0]
    chip.clock_ns = lambda: time.monotonic_ns() + shift[0]
    keys = [getattr(ecodes, f"KEY_{c}") for c in "0123456789"]
    for n in range(TAPS):
        value = encode(H10301, n % 256, n)
        for i in range(26):
            line = 7 if (value >> (25 - i)) & 1 else 6
            chip.set_input(line, False)
            chip.set_input(line, True)
        now = time.monotonic_ns()
        sec, usec = divmod(now // 1000, 1_000_000)
        events: list[InputEvent] = []
        for digit in f"{n:010d}":
            events.append(InputEvent(sec, usec, ecodes.EV_KEY, keys[int(digit)], 1))
            events.append(InputEvent(sec, usec, ecodes.EV_KEY, keys[int(digit)], 0))
        events.append(InputEvent(sec, usec, ecodes.EV_KEY, ecodes.KEY_ENTER, 1))
        device.push(events)
        await asyncio.sleep(0.027)
    await _until(lambda: len(taps) >= 2 * TAPS)
    after = rss_mib(os.getpid())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    chip.close()
    return before, after


def main() -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    # Memory first, before the other parts import anything.
    before, after = asyncio.run(_rss())
    frames = _frames()
    decode = _decode_rate(frames)
    edges = _edges_rate(frames)
    print(f"- decoder: {decode:,.0f} frames/s on one core (decode alone; 26/34/37 bits mixed)")
    print(f"- edges to token (splitter + decoder + session): {edges:,.0f} frames/s")
    latencies = asyncio.run(_latency())
    print(
        f"- edge-to-tap latency on the model ({LATENCY_FRAMES} frames): median "
        f"{statistics.median(latencies):.1f} ms, p95 {pct(latencies, 95):.1f} ms, "
        f"max {max(latencies):.1f} ms (25 ms of it is the end-of-frame gap; target < 30 ms)"
    )
    print(
        f"- RSS with one Wiegand and one HID reader after {TAPS:,} taps each: "
        f"{after:.1f} MiB ({after - before:+.1f} MiB for the gateway's modules, evdev, gpiod "
        "and both readers)"
    )
