"""Falling edges on D0/D1 -> frames, by the kernel's timestamps. Pure.

A Wiegand reader pulls D0 low for a 0 and D1 low for a 1, each pulse 20-100 us, bits
0.2-20 ms apart; a frame ends with silence. Frames are split on a gap of at least
``FRAME_GAP_NS`` measured between the kernel's own edge timestamps, so how late Python
reads the events does not matter.

The kernel numbers every edge of a request (``global_seqno``, from 1) when it happens,
in its hard interrupt handler; each line's event is then queued by that line's own
interrupt thread (gpiolib-cdev). So:

- a number skipped for good means edges were lost: the event queue overflowed (its
  oldest events are dropped), or a line's next edge came before its thread had queued
  the previous one (the later edge overwrites the earlier). The frames around the gap
  are discarded (``Frame.overflow``), never guessed;
- D0's and D1's events can reach the queue out of order when one line's thread runs
  late: within a frame, bits are put in the order the kernel numbered them, so a
  late-queued bit is not mistaken for a lost one.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.readers.wiegand.formats import MAX_FRAME_BITS

FRAME_GAP_NS = 25_000_000  # > the 20 ms the standard allows between bits


@dataclass(frozen=True, slots=True)
class Frame:
    value: int  # the bits, first received most significant
    length: int
    first_ns: int  # kernel timestamps (CLOCK_MONOTONIC) of the first and last edge
    last_ns: int
    overflow: bool = False  # edges were lost: discard

    def bits(self) -> str:
        return format(self.value, f"0{self.length}b") if self.length else ""


class FrameSplitter:
    """Feed edges as the kernel queued them; finished frames come out of ``feed`` (when
    an edge starts a new frame) and ``flush`` (when the silence after the last edge has
    lasted ``gap_ns``). Bits beyond ``MAX_FRAME_BITS`` are counted, not kept."""

    __slots__ = ("_bits", "_count", "_done", "_first", "_gap", "_last", "_max", "_min")

    def __init__(self, gap_ns: int = FRAME_GAP_NS) -> None:
        self._gap = gap_ns
        self._done = 0  # the highest sequence number of the frames finished; from 1
        self._bits: list[tuple[int, int]] = []  # (seqno, bit), up to MAX_FRAME_BITS
        self._count = 0  # edges in the current frame
        self._min = self._max = 0  # ... their lowest and highest seqno
        self._first = self._last = 0  # ... their earliest and latest timestamp

    def feed(self, bit: int, timestamp_ns: int, seqno: int) -> Frame | None:
        """One falling edge: ``bit`` 0 (D0) or 1 (D1)."""
        if seqno <= self._done:
            # A straggler of a frame already finished without it, and so discarded for
            # the hole in its numbers; it cannot belong to the next one.
            return None
        done = None
        if self._count and timestamp_ns - self._last >= self._gap:
            # An edge lost right here, in the gap, would belong to either frame.
            done = self._finish(gap_lost=seqno != self._max + 1)
        if not self._count:
            self._min = self._max = seqno
            self._first = self._last = timestamp_ns
        else:
            self._min, self._max = min(self._min, seqno), max(self._max, seqno)
            self._first, self._last = min(self._first, timestamp_ns), max(self._last, timestamp_ns)
        self._count += 1
        if self._count <= MAX_FRAME_BITS:
            self._bits.append((seqno, bit & 1))
        return done

    def deadline_ns(self) -> int | None:
        """When the current frame ends if no edge comes (kernel clock), or None."""
        return self._last + self._gap if self._count else None

    def flush(self, now_ns: int) -> Frame | None:
        """The current frame if the line has been silent for the gap by ``now_ns``."""
        if self._count and now_ns - self._last >= self._gap:
            return self._finish()
        return None

    def _finish(self, *, gap_lost: bool = False) -> Frame:
        holes = self._max - self._min + 1 != self._count or self._min != self._done + 1
        value = 0
        if self._count <= MAX_FRAME_BITS:
            for _, bit in sorted(self._bits):  # in the kernel's order
                value = value << 1 | bit
        frame = Frame(value, self._count, self._first, self._last, gap_lost or holes)
        self._done = self._max
        self._bits = []
        self._count = 0
        return frame
