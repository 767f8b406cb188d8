"""Falling edges on D0/D1 -> frames, by the kernel's timestamps. Pure.

A Wiegand reader pulls D0 low for a 0 and D1 low for a 1, each pulse 20-100 us, bits
0.2-20 ms apart; a frame ends with silence. Frames are split on a gap of at least
``FRAME_GAP_NS`` measured between the kernel's own edge timestamps, so how late Python
reads the events does not matter. The kernel numbers every edge of a request
(``global_seqno``, from 1); a number skipped means its event queue overflowed and edges
were lost: the frames around the gap are discarded (``Frame.overflow``), never guessed.
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
    """Feed edges in the order the kernel numbered them; finished frames come out of
    ``feed`` (when an edge starts a new frame) and ``flush`` (when the silence after the
    last edge has lasted ``gap_ns``). Bits beyond ``MAX_FRAME_BITS`` are counted, not kept."""

    __slots__ = ("_first", "_gap", "_last", "_length", "_overflow", "_seq", "_value")

    def __init__(self, gap_ns: int = FRAME_GAP_NS) -> None:
        self._gap = gap_ns
        self._seq = 0  # the last sequence number seen; the kernel starts at 1
        self._value = 0
        self._length = 0
        self._first = 0
        self._last = 0
        self._overflow = False

    def feed(self, bit: int, timestamp_ns: int, seqno: int) -> Frame | None:
        """One falling edge: ``bit`` 0 (D0) or 1 (D1)."""
        lost = seqno != self._seq + 1
        self._seq = seqno
        done = None
        if self._length and timestamp_ns - self._last >= self._gap:
            # The lost edges fell somewhere in the gap: either frame may miss bits.
            done = self._finish(overflow=lost)
        if lost:
            self._overflow = True
        if self._length == 0:
            self._first = timestamp_ns
        self._last = timestamp_ns
        self._length += 1
        if self._length <= MAX_FRAME_BITS:
            self._value = self._value << 1 | (bit & 1)
        return done

    def deadline_ns(self) -> int | None:
        """When the current frame ends if no edge comes (kernel clock), or None."""
        return self._last + self._gap if self._length else None

    def flush(self, now_ns: int) -> Frame | None:
        """The current frame if the line has been silent for the gap by ``now_ns``."""
        if self._length and now_ns - self._last >= self._gap:
            return self._finish()
        return None

    def _finish(self, *, overflow: bool = False) -> Frame:
        frame = Frame(
            self._value if self._length <= MAX_FRAME_BITS else 0,
            self._length,
            self._first,
            self._last,
            self._overflow or overflow,
        )
        self._value = self._length = 0
        self._overflow = False
        return frame
