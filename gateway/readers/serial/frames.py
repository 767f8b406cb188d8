"""Bytes -> frames for serial RFID readers. Pure: no I/O, no clocks, never raises on input.

Both parsers are incremental: ``feed`` takes whatever the port delivered (a byte, half a
frame, ten frames) and returns the frames completed so far, keeping a partial frame for
the next call. Garbage is skipped and counted, never buffered: the buffer stays bounded
whatever the line noise.
"""

from __future__ import annotations

import re
from binascii import unhexlify
from dataclasses import dataclass

# --- RDM6300 / EM4100 ---------------------------------------------------------------
# STX, 10 ASCII hex digits (version byte + 4 id bytes), 2 ASCII hex digits of checksum
# (XOR of the 5 data bytes), ETX. Lowercase hex is accepted: some clones send it.
STX = 0x02
ETX = 0x03
FRAME_LEN = 14
_FRAME = re.compile(rb"\x02([0-9A-Fa-f]{10})([0-9A-Fa-f]{2})\x03")
# A frame still arriving: what is there so far is a valid prefix. Any other byte after
# STX proves the STX was noise, and we resynchronise at once instead of waiting.
_PARTIAL = re.compile(rb"\x02[0-9A-Fa-f]{0,12}\Z")


@dataclass(frozen=True, slots=True)
class CardFrame:
    """One EM4100 read: the version (customer) byte and the 4 id bytes."""

    raw: bytes

    @property
    def version(self) -> int:
        return self.raw[0]

    @property
    def card_id(self) -> bytes:
        return self.raw[1:]


@dataclass(slots=True)
class Rdm6300Stats:
    """Counters since the parser was made.

    Every byte fed is accounted for exactly once: ``14 * (frames_ok + bad_checksum +
    ghost_ids) + garbage_bytes + pending == bytes fed``.
    """

    frames_ok: int = 0
    bad_checksum: int = 0
    ghost_ids: int = 0  # all-zero ids that cheap readers emit without a card
    garbage_bytes: int = 0  # bytes outside any well-formed frame


class Rdm6300Parser:
    __slots__ = ("_pending", "stats")

    def __init__(self) -> None:
        self._pending = b""
        self.stats = Rdm6300Stats()

    @property
    def pending(self) -> int:
        """Bytes held back for the next ``feed``: at most a frame minus one."""
        return len(self._pending)

    def reset(self) -> None:
        """Drop a partial frame (counted as garbage): the stream it belonged to is gone."""
        self.stats.garbage_bytes += len(self._pending)
        self._pending = b""

    def feed(self, data: bytes) -> list[CardFrame]:
        buf = self._pending + data if self._pending else bytes(data)
        stats = self.stats
        frames: list[CardFrame] = []
        end = len(buf)
        pos = 0
        while True:
            start = buf.find(STX, pos)
            if start < 0:
                stats.garbage_bytes += end - pos
                self._pending = b""
                return frames
            stats.garbage_bytes += start - pos
            match = _FRAME.match(buf, start)
            if match is None:
                if end - start < FRAME_LEN and _PARTIAL.match(buf, start):
                    self._pending = buf[start:]
                    return frames
                stats.garbage_bytes += 1  # the false STX; what follows is searched again
                pos = start + 1
                continue
            pos = start + FRAME_LEN
            raw = unhexlify(match[1])
            if raw[0] ^ raw[1] ^ raw[2] ^ raw[3] ^ raw[4] != int(match[2], 16):
                stats.bad_checksum += 1
            elif not any(raw[1:]):
                stats.ghost_ids += 1
            else:
                stats.frames_ok += 1
                frames.append(CardFrame(raw))


def encode_rdm6300(raw: bytes, *, lowercase: bool = False) -> bytes:
    """The frame a reader sends for ``raw`` (5 bytes): for tests, benchmarks, simulators."""
    if len(raw) != 5:
        raise ValueError(f"an EM4100 id is 5 bytes, got {len(raw)}")
    checksum = raw[0] ^ raw[1] ^ raw[2] ^ raw[3] ^ raw[4]
    body = (raw + bytes([checksum])).hex()
    return bytes([STX]) + (body if lowercase else body.upper()).encode() + bytes([ETX])


# --- One token per line ---------------------------------------------------------------
# USB readers in "virtual COM port" mode, Arduino sketches: the token as text, then CR,
# LF or CRLF. Longer than any card number or token Cobot stores, short enough that a
# stream without line ends cannot grow memory.
MAX_LINE = 128


@dataclass(slots=True)
class LineStats:
    lines_ok: int = 0
    too_long: int = 0  # lines over the cap, dropped whole
    invalid: int = 0  # not UTF-8, or with control characters


class LineParser:
    __slots__ = ("_discarding", "_max_line", "_pending", "stats")

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max_line = max_line
        self._pending = b""
        # In the middle of an over-long line (already counted): drop up to its end.
        self._discarding = False
        self.stats = LineStats()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def reset(self) -> None:
        """Drop a partial line: the stream it belonged to is gone."""
        self._pending = b""
        self._discarding = False

    def feed(self, data: bytes) -> list[str]:
        # CRLF becomes two line ends, i.e. an empty line, which is skipped.
        *complete, tail = bytes(data).replace(b"\r", b"\n").split(b"\n")
        tokens: list[str] = []
        if complete:
            first = self._pending + complete[0]
            self._pending = b""
            if self._discarding:
                self._discarding = False
            else:
                self._take(first, tokens)
            for line in complete[1:]:
                self._take(line, tokens)
        if not self._discarding:
            self._pending += tail
            if len(self._pending) > self._max_line:
                self.stats.too_long += 1
                self._pending = b""
                self._discarding = True
        return tokens

    def _take(self, line: bytes, tokens: list[str]) -> None:
        if len(line) > self._max_line:
            self.stats.too_long += 1
            return
        line = line.strip()
        if not line:
            return
        try:
            text = line.decode()
        except UnicodeDecodeError:
            self.stats.invalid += 1
            return
        if not text.isprintable():
            self.stats.invalid += 1
            return
        self.stats.lines_ok += 1
        tokens.append(text)
