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

from gateway.readers.tokens import normalize_text_token

# --- EM4100 in ASCII: RDM6300, ID-12LA ----------------------------------------------
# STX, 10 ASCII hex digits (version byte + 4 id bytes), 2 ASCII hex digits of checksum
# (XOR of the 5 data bytes), the layout's trailer, ETX. Lowercase hex is accepted: some
# clones send it.
STX = 0x02
ETX = 0x03
_HEX = rb"[0-9A-Fa-f]"


@dataclass(frozen=True, slots=True)
class Em4100Layout:
    """How a module frames an EM4100 read in ASCII; ``trailer`` sits before ETX."""

    name: str
    trailer: bytes = b""

    @property
    def frame_len(self) -> int:
        return 14 + len(self.trailer)

    def frame_pattern(self) -> re.Pattern[bytes]:
        return re.compile(
            rb"\x02(" + _HEX + rb"{10})(" + _HEX + rb"{2})" + re.escape(self.trailer) + rb"\x03"
        )

    def partial_pattern(self) -> re.Pattern[bytes]:
        """A frame still arriving: what is there so far is a valid prefix. Any other
        byte after STX proves the STX was noise, and we resynchronise at once."""
        trailer_prefixes = b"|".join(
            re.escape(self.trailer[:n]) for n in range(len(self.trailer) + 1)
        )
        return re.compile(
            rb"\x02(?:" + _HEX + rb"{0,11}|" + _HEX + rb"{12}(?:" + trailer_prefixes + rb"))\Z"
        )


# RDM6300 / RDM630 (and boards built on them): 14 bytes, nothing between checksum and ETX.
RDM6300 = Em4100Layout("rdm6300")
# ID Innovations ID-3LA / ID-12LA / ID-20LA in ASCII output mode (and SparkFun's USB
# reader board, which carries one): CR LF before ETX, 16 bytes (ID-12LA datasheet,
# "ASCII data format").
ID12LA = Em4100Layout("id12la", b"\r\n")
FRAME_LEN = RDM6300.frame_len


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
class Em4100Stats:
    """Counters since the parser was made.

    Every byte fed is accounted for exactly once: ``frame_len * (frames_ok +
    bad_checksum + ghost_ids) + garbage_bytes + pending == bytes fed``.
    """

    frames_ok: int = 0
    bad_checksum: int = 0
    ghost_ids: int = 0  # all-zero ids that cheap readers emit without a card
    garbage_bytes: int = 0  # bytes outside any well-formed frame


class Em4100Parser:
    """EM4100 reads framed in ASCII, by ``layout`` (RDM6300 unless told)."""

    __slots__ = ("_frame", "_len", "_partial", "_pending", "layout", "stats")

    def __init__(self, layout: Em4100Layout = RDM6300) -> None:
        self.layout = layout
        self._frame = layout.frame_pattern()
        self._partial = layout.partial_pattern()
        self._len = layout.frame_len
        self._pending = b""
        self.stats = Em4100Stats()

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
            match = self._frame.match(buf, start)
            if match is None:
                if end - start < self._len and self._partial.match(buf, start):
                    self._pending = buf[start:]
                    return frames
                stats.garbage_bytes += 1  # the false STX; what follows is searched again
                pos = start + 1
                continue
            pos = start + self._len
            raw = unhexlify(match[1])
            if raw[0] ^ raw[1] ^ raw[2] ^ raw[3] ^ raw[4] != int(match[2], 16):
                stats.bad_checksum += 1
            elif not any(raw[1:]):
                stats.ghost_ids += 1
            else:
                stats.frames_ok += 1
                frames.append(CardFrame(raw))


def encode_em4100(raw: bytes, layout: Em4100Layout = RDM6300, *, lowercase: bool = False) -> bytes:
    """The frame a reader sends for ``raw`` (5 bytes): for tests, benchmarks, simulators."""
    if len(raw) != 5:
        raise ValueError(f"an EM4100 id is 5 bytes, got {len(raw)}")
    checksum = raw[0] ^ raw[1] ^ raw[2] ^ raw[3] ^ raw[4]
    body = (raw + bytes([checksum])).hex()
    text = (body if lowercase else body.upper()).encode()
    return bytes([STX]) + text + layout.trailer + bytes([ETX])


def encode_rdm6300(raw: bytes, *, lowercase: bool = False) -> bytes:
    return encode_em4100(raw, RDM6300, lowercase=lowercase)


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
    garbage_bytes: int = 0  # in the lines counted above (an endless line: its first cap)


class LineParser:
    """One token per line, normalised by ``gateway.readers.tokens.normalize_text_token``;
    lines over ``max_line`` bytes are dropped whole."""

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
                self.stats.garbage_bytes += len(self._pending)
                self._pending = b""
                self._discarding = True
        return tokens

    def _take(self, line: bytes, tokens: list[str]) -> None:
        if len(line) > self._max_line:
            self.stats.too_long += 1
            self.stats.garbage_bytes += len(line)
            return
        if not line.strip():
            return  # an empty line (CRLF's second half, or a blank line): nothing to say
        try:
            token = normalize_text_token(line.decode())
        except UnicodeDecodeError:
            token = None
        if token is None:
            self.stats.invalid += 1
            self.stats.garbage_bytes += len(line)
            return
        self.stats.lines_ok += 1
        tokens.append(token)
