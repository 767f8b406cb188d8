"""Frames -> tokens: decoding, counting, keypad PINs, and the D0/D1-swapped diagnosis.

One per reader. Fed finished frames (from ``FrameSplitter``), it answers with the token
for Cobot or None, and keeps the counters ``status`` shows. Every dropped frame is
counted by its ``Rejection``; none ever becomes a tap.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass

import structlog

from gateway.readers.wiegand.formats import (
    Card,
    Key,
    Rejected,
    Rejection,
    WiegandFormat,
    decode,
)
from gateway.readers.wiegand.frames import Frame

log = structlog.get_logger(__name__)

SWAPPED_AFTER = 2  # this many SWAPPED frames in a row (no good one between): say so
PIN_TIMEOUT_NS = 10_000_000_000  # a PIN whose next key is this late is dropped
MAX_PIN = 12
SWAPPED_HINT = (
    "D0 and D1 look swapped: every frame fails its parity the same way and its "
    "complement is a valid card. Swap d0_line and d1_line in the config (or the two "
    "data wires: green is D0, white is D1)"
)


class WiegandTokenFormat(enum.StrEnum):
    FACILITY_CARD = "facility-card"  # "123,45678": as printed on most cards
    DECIMAL = "decimal"  # the whole number between the parity bits, 10+ digits
    HEX = "hex"  # the same number in uppercase hex


def format_card(card: Card, fmt: WiegandTokenFormat) -> str:
    """The card as Cobot knows it. Facility and card number are zero-padded to their
    widths (3 and 5 digits for H10301, as printed); H10302 has no facility code, so
    ``facility-card`` gives its card number alone. ``decimal`` pads to 10 digits (what
    readers that type the number show), ``hex`` to the data bits' width."""
    layout = card.format
    match fmt:
        case WiegandTokenFormat.FACILITY_CARD:
            number = str(card.number).zfill(_digits(layout.card.width))
            if layout.facility is None or card.facility is None:
                return number
            return f"{str(card.facility).zfill(_digits(layout.facility.width))},{number}"
        case WiegandTokenFormat.DECIMAL:
            return str(card.data).zfill(10)
        case WiegandTokenFormat.HEX:
            return format(card.data, f"0{(layout.data.width + 3) // 4}X")


def _digits(bits: int) -> int:
    return len(str((1 << bits) - 1))


@dataclass(frozen=True, slots=True)
class WiegandStats:
    cards: int
    keys: int
    pins: int
    rejected: dict[str, int]  # by Rejection value
    swapped_suspected: bool


class WiegandSession:
    def __init__(
        self,
        reader: str,
        formats: tuple[WiegandFormat, ...],
        token_format: WiegandTokenFormat,
        *,
        keypad: bool = False,
    ) -> None:
        self._formats = formats
        self._token_format = token_format
        self._keypad = keypad
        self._log = log.bind(reader=reader)
        self._cards = self._keys = self._pins = 0
        self._rejected: Counter[Rejection] = Counter()
        self._swapped_run = 0
        self._swapped_reported = False
        self._pin = ""
        self._pin_at = 0

    @property
    def stats(self) -> WiegandStats:
        return WiegandStats(
            self._cards,
            self._keys,
            self._pins,
            {r.value: n for r, n in self._rejected.items()},
            self._swapped_reported,
        )

    def frame(self, frame: Frame) -> str | None:
        """The token this frame completes, if any."""
        if frame.overflow:
            self._reject(Rejected(Rejection.OVERFLOW, frame.length))
            return None
        result = decode(frame.value, frame.length, self._formats)
        if isinstance(result, Rejected):
            self._reject(result)
            return None
        self._swapped_run = 0
        if isinstance(result, Key):
            return self._key(result.key, frame.last_ns)
        self._cards += 1
        self._pin = ""  # a card in the middle of a PIN entry ends it
        return format_card(result, self._token_format)

    def _reject(self, rejected: Rejected) -> None:
        reason = rejected.reason
        self._rejected[reason] += 1
        if reason is Rejection.SWAPPED:
            self._swapped_run += 1
            if self._swapped_run >= SWAPPED_AFTER and not self._swapped_reported:
                self._swapped_reported = True
                self._log.error("wiegand_lines_swapped", hint=SWAPPED_HINT)
                return
        else:
            self._swapped_run = 0
        if reason is Rejection.NOISE:
            # Some readers pulse once at power-up; worth a debug line, not a warning.
            self._log.debug("wiegand_noise", bits=rejected.length)
        elif self._rejected[reason] == 1:
            self._log.warning("wiegand_frame_dropped", reason=reason.value, bits=rejected.length)
        else:
            self._log.debug("wiegand_frame_dropped", reason=reason.value, bits=rejected.length)

    def _key(self, key: str, at_ns: int) -> str | None:
        self._keys += 1
        if not self._keypad:
            self._log.debug("wiegand_key_ignored")  # keypad = false; which key is a secret
            return None
        if self._pin and at_ns - self._pin_at > PIN_TIMEOUT_NS:
            self._log.info("wiegand_pin_timed_out")
            self._pin = ""
        self._pin_at = at_ns
        if key == "*":
            self._pin = ""
            return None
        if key == "#":
            pin, self._pin = self._pin, ""
            if not pin:
                return None
            self._pins += 1
            return pin
        if len(self._pin) >= MAX_PIN:
            self._log.info("wiegand_pin_too_long")
            self._pin = ""
            return None
        self._pin += key
        return None
