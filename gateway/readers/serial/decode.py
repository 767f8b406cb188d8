"""Frames -> token strings, one decoder per ``protocol`` of the serial reader config.

The reader only knows "bytes in, tokens out"; which parser runs and how a card's bytes
are printed is decided here, once, from the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.model import TokenFormat
from gateway.readers.serial.frames import ID12LA, RDM6300, Em4100Layout, Em4100Parser, LineParser
from gateway.readers.tokens import format_token

# EM4100: the printed decimal number is the 4 id bytes; the version byte is not printed.
EM4100_ID_BYTES = 4


@dataclass(frozen=True, slots=True)
class DecoderCounts:
    ok: int
    bad: int
    ghosts: int
    garbage_bytes: int


class Decoder(Protocol):
    def feed(self, data: bytes) -> list[str]: ...

    def counts(self) -> DecoderCounts: ...

    def reset(self) -> None:
        """Forget a partial frame (the port was reopened); counters are kept."""


SerialProtocol = Literal["rdm6300", "id12la", "line"]
PROTOCOLS: tuple[SerialProtocol, ...] = ("rdm6300", "id12la", "line")
_LAYOUTS: dict[str, Em4100Layout] = {"rdm6300": RDM6300, "id12la": ID12LA}


class Em4100Decoder:
    __slots__ = ("_format", "_parser")

    def __init__(self, layout: Em4100Layout, token_format: TokenFormat) -> None:
        self._parser = Em4100Parser(layout)
        self._format = token_format

    def feed(self, data: bytes) -> list[str]:
        fmt = self._format
        return [
            format_token(fmt, frame.raw, id_bytes=EM4100_ID_BYTES)
            for frame in self._parser.feed(data)
        ]

    def counts(self) -> DecoderCounts:
        s = self._parser.stats
        return DecoderCounts(s.frames_ok, s.bad_checksum, s.ghost_ids, s.garbage_bytes)

    def reset(self) -> None:
        self._parser.reset()


class LineDecoder:
    """Tokens are passed on as the reader printed them: ``token_format`` does not apply."""

    __slots__ = ("_parser",)

    def __init__(self) -> None:
        self._parser = LineParser()

    def feed(self, data: bytes) -> list[str]:
        return self._parser.feed(data)

    def counts(self) -> DecoderCounts:
        s = self._parser.stats
        return DecoderCounts(s.lines_ok, s.too_long + s.invalid, 0, s.garbage_bytes)

    def reset(self) -> None:
        self._parser.reset()


def make_decoder(protocol: SerialProtocol, token_format: TokenFormat) -> Decoder:
    if protocol == "line":
        return LineDecoder()
    return Em4100Decoder(_LAYOUTS[protocol], token_format)
