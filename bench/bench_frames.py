"""Serial parsers: frames (or lines) parsed per second on one core, by chunk size.

The gateway's budget is 5,000 taps parsed and decided per second; this measures the
parsing share. Chunk size 1 is the worst case (a slow port delivering byte by byte);
1024 is the most pyserial-asyncio-fast reads at once. At 9600 baud an RDM6300 delivers
at most ~68 frames/s, so the margin is what matters on a slower Pi core.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Sequence

from gateway.model import TokenFormat
from gateway.readers.serial.decode import make_decoder
from gateway.readers.serial.frames import Em4100Parser, LineParser, encode_rdm6300

FRAMES = 20_000
REPEATS = 5
CHUNKS = (1, 14, 64, 1024)
TARGET = 5_000

Feed = Callable[[bytes], Sequence[object]]


def _stream() -> bytes:
    rng = random.Random(6300)
    cards = [bytes([rng.randrange(256)]) + rng.randbytes(4) for _ in range(50)]
    return b"".join(encode_rdm6300(rng.choice(cards)) for _ in range(FRAMES))


def _lines() -> bytes:
    rng = random.Random(42)
    return b"".join(f"{rng.randrange(10**10):010d}\r\n".encode() for _ in range(FRAMES))


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _rate(make: Callable[[], Feed], chunks: list[bytes]) -> float:
    """Median frames per second over REPEATS runs, each with a fresh parser."""
    rates = []
    for _ in range(REPEATS):
        feed = make()
        start = time.perf_counter()
        n = 0
        for chunk in chunks:
            n += len(feed(chunk))
        elapsed = time.perf_counter() - start
        assert n == FRAMES, n
        rates.append(n / elapsed)
    return statistics.median(rates)


def main() -> None:
    rdm, lines = _stream(), _lines()
    cases: list[tuple[str, bytes, Callable[[], Feed]]] = [
        ("RDM6300 parser (frames)", rdm, lambda: Em4100Parser().feed),
        ("RDM6300 parser + hex token", rdm, lambda: make_decoder("rdm6300", TokenFormat.HEX).feed),
        ("line parser (tokens)", lines, lambda: LineParser().feed),
    ]
    print(f"{FRAMES:,} frames per run, median of {REPEATS} runs; target {TARGET:,}/s overall.\n")
    print("| parser | " + " | ".join(f"chunk {c} B" for c in CHUNKS) + " |")
    print("|---|" + "---:|" * len(CHUNKS))
    for label, data, make in cases:
        cells = []
        for size in CHUNKS:
            rate = _rate(make, _chunks(data, size))
            cells.append(f"{rate:,.0f}/s ({rate / TARGET:.0f}x)")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
