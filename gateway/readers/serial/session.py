"""Tokens -> reads worth acting on: the confirmation rule and the garbage watch.

Between the pure decoder (bytes -> tokens) and the taps: the rules that need a clock or a
memory of what came before, kept apart from the port handling in ``reader``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.model import TokenFormat
from gateway.readers.serial.decode import PROTOCOLS, Decoder, SerialProtocol, make_decoder

# Garbage bytes without a single good frame before the reader says it is probably
# misconfigured: a few taps' worth, well above the odd noise byte at power-up.
GARBAGE_RUN = 64


class Confirmer:
    """The same card ``reads`` times, each within ``window`` seconds of the one before,
    before it counts: a single phantom frame (a valid checksum for a card that is not
    there, which cheap RDM6300 boards emit now and then) is dropped; a real card repeats
    its frame while it is held (about every 65 ms on an RDM6300), so it passes after
    one repeat. ``reads=1`` accepts everything.

    ``dropped`` counts the reads of IDs that were never confirmed, once their window
    has passed.
    """

    __slots__ = ("_clock", "_dropped", "_pending", "_reads", "_window")

    def __init__(
        self, reads: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if reads < 1:
            raise ValueError(f"reads must be >= 1, got {reads}")
        self._reads = reads
        self._window = window
        self._clock = clock
        self._pending: dict[str, tuple[int, float]] = {}  # token -> (reads, last read)
        self._dropped = 0

    @property
    def dropped(self) -> int:
        self._expire(self._clock())
        return self._dropped

    def accept(self, token: str) -> bool:
        """One read of ``token``: True once it is confirmed (and for every read after)."""
        if self._reads == 1:
            return True
        now = self._clock()
        self._expire(now)
        count = self._pending.get(token, (0, now))[0] + 1
        self._pending[token] = (count, now)
        return count >= self._reads

    def _expire(self, now: float) -> None:
        # Entries live one window: the dict holds only the cards read just now.
        stale = [t for t, (_, last) in self._pending.items() if now - last > self._window]
        for token in stale:
            count, _ = self._pending.pop(token)
            if count < self._reads:
                self._dropped += count


class GarbageWatch:
    """Notices a reader that sends only garbage (wrong protocol, wrong baud rate) and
    says, once, what is probably wrong.

    While no good frame has come, the same bytes also go through the decoders of the
    other protocols: if one of them decodes them, the message names it. Once a good
    frame comes, or the warning is given, the watch stops (and costs nothing).
    """

    __slots__ = ("_baudrate", "_others", "_protocol", "warning")

    def __init__(self, protocol: SerialProtocol, baudrate: int, token_format: TokenFormat) -> None:
        self._protocol = protocol
        self._baudrate = baudrate
        self._others: dict[str, Decoder] | None = {
            p: make_decoder(p, token_format) for p in PROTOCOLS if p != protocol
        }
        self.warning: str | None = None

    @property
    def watching(self) -> bool:
        return self._others is not None

    def feed(self, data: bytes, ok: int, garbage_bytes: int) -> str | None:
        """After the reader's decoder took ``data`` (its counts now ``ok`` good frames,
        ``garbage_bytes``): the warning, the one time it is due; else None."""
        if self._others is None:
            return None
        if ok:
            self._others = None  # the reader works
            return None
        for decoder in self._others.values():
            decoder.feed(data)
        if garbage_bytes < GARBAGE_RUN:
            return None
        found = [p for p, d in self._others.items() if d.counts().ok]
        self._others = None
        if found:
            cause = (
                f"the bytes are valid {found[0]!r} frames: set protocol = {found[0]!r} "
                "for this reader"
            )
        else:
            cause = (
                f"wrong baud rate (baudrate = {self._baudrate}; RDM6300 and ID-12LA "
                "modules send at 9600) or wrong protocol (rdm6300, id12la or line)"
            )
        self.warning = (
            f"{garbage_bytes} bytes of garbage and not one valid {self._protocol!r} frame: {cause}"
        )
        return self.warning
