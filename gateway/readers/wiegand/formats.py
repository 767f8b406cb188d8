"""Wiegand frame layouts, as data, and the pure decoder of one frame.

A frame is the bits in the order they arrived (the first bit is the most significant of
``value``). Layouts (HID's public format descriptions, "Understanding Card Data
Formats", HID 0.0.2 2006; bit positions here count from 0, the leading parity bit):

- H10301, 26 bits: even parity (bit 0) over bits 1-12, facility code 1-8 (8 bits), card
  number 9-24 (16 bits), odd parity (bit 25) over 13-24.
- H10306, 34 bits: even parity over 1-16, facility 1-16, card 17-32, odd over 17-32.
- H10302, 37 bits: even parity over 1-18, card number 1-35 (no facility code), odd
  over 18-35 (the two parity ranges share bit 18).
- H10304, 37 bits: the same bits and parity as H10302, read as facility 1-16 (16 bits)
  and card 17-35 (19 bits).
- Keypads send each key as its own 4-bit frame (0-9, 10 = ``*``, 11 = ``#``) or as an
  8-bit frame whose high nibble is the complement of the low one.

Readers with D0 and D1 swapped send every bit inverted. Each parity range above covers
an odd number of bits together with its parity bit, so inverting a frame breaks both
parities while its complement decodes: such a frame is rejected as ``SWAPPED``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MAX_FRAME_BITS = 64  # nothing real is longer; more is line noise or two frames glued
NOISE_BITS = 3  # shorter frames: the pulse(s) some readers emit at power-up, or a glitch


@dataclass(frozen=True, slots=True)
class Span:
    """Bits ``start`` .. ``start + width - 1`` of a frame (0 = the first bit received)."""

    start: int
    width: int

    def of(self, value: int, length: int) -> int:
        return (value >> (length - self.start - self.width)) & ((1 << self.width) - 1)


@dataclass(frozen=True, slots=True)
class Parity:
    """Bit ``position`` makes the number of ones in it plus ``covers`` even or odd."""

    position: int
    covers: Span
    odd: bool

    def holds(self, value: int, length: int) -> bool:
        ones = self.covers.of(value, length).bit_count() + Span(self.position, 1).of(value, length)
        return ones % 2 == (1 if self.odd else 0)


@dataclass(frozen=True, slots=True)
class WiegandFormat:
    name: str
    length: int
    facility: Span | None  # None: the format has no facility code (H10302)
    card: Span
    data: Span  # all bits between the parity bits: "the whole number"
    parities: tuple[Parity, ...]


H10301 = WiegandFormat(
    "H10301",
    26,
    facility=Span(1, 8),
    card=Span(9, 16),
    data=Span(1, 24),
    parities=(Parity(0, Span(1, 12), odd=False), Parity(25, Span(13, 12), odd=True)),
)
H10306 = WiegandFormat(
    "H10306",
    34,
    facility=Span(1, 16),
    card=Span(17, 16),
    data=Span(1, 32),
    parities=(Parity(0, Span(1, 16), odd=False), Parity(33, Span(17, 16), odd=True)),
)
_P37 = (Parity(0, Span(1, 18), odd=False), Parity(36, Span(18, 18), odd=True))
H10302 = WiegandFormat(
    "H10302", 37, facility=None, card=Span(1, 35), data=Span(1, 35), parities=_P37
)
H10304 = WiegandFormat(
    "H10304", 37, facility=Span(1, 16), card=Span(17, 19), data=Span(1, 35), parities=_P37
)
FORMATS = {f.name: f for f in (H10301, H10306, H10302, H10304)}

# Config spellings -> layouts. "37" is H10304: its facility,card reading of the 35 bits;
# the whole number (decimal, hex) is the same under H10302.
FORMAT_NAMES: dict[str, tuple[WiegandFormat, ...]] = {
    "auto": (H10301, H10306, H10304),
    "26": (H10301,),
    "34": (H10306,),
    "37": (H10304,),
    "h10301": (H10301,),
    "h10306": (H10306,),
    "h10302": (H10302,),
    "h10304": (H10304,),
}


def formats_for(names: str | tuple[str, ...]) -> tuple[WiegandFormat, ...]:
    """The layouts a config's ``format`` selects; ``ValueError`` naming the choices.
    Two layouts of one length cannot both be chosen (a frame must mean one card)."""
    chosen: dict[int, WiegandFormat] = {}
    for name in (names,) if isinstance(names, str) else names:
        layouts = FORMAT_NAMES.get(name.lower())
        if layouts is None:
            raise ValueError(
                f"unknown Wiegand format {name!r}; expected one of {', '.join(FORMAT_NAMES)}"
            )
        for layout in layouts:
            other = chosen.setdefault(layout.length, layout)
            if other is not layout:
                raise ValueError(f"{other.name} and {layout.name} are both {layout.length} bits")
    if not chosen:
        raise ValueError("expected at least one Wiegand format")
    return tuple(chosen.values())


class Rejection(enum.StrEnum):
    NOISE = "noise"  # 1-3 bits: a power-up pulse or a glitch
    WRONG_LENGTH = "wrong-length"  # no configured format has this many bits
    PARITY = "parity"
    SWAPPED = "swapped"  # parity fails, the complement decodes: D0/D1 swapped
    BAD_KEY = "bad-key"  # a 4/8-bit frame that is no key
    OVERFLOW = "overflow"  # the kernel's event queue overflowed during the frame
    TOO_LONG = "too-long"  # over MAX_FRAME_BITS


@dataclass(frozen=True, slots=True)
class Card:
    format: WiegandFormat
    facility: int | None
    number: int
    data: int  # the whole number (all bits between the parity bits)


@dataclass(frozen=True, slots=True)
class Key:
    key: str  # "0".."9", "*", "#"


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: Rejection
    length: int


Decoded = Card | Key | Rejected
KEYS = "0123456789*#"


def _card(value: int, length: int, formats: tuple[WiegandFormat, ...]) -> Card | bool | None:
    """The card, or False when a format of this length exists but parity fails, or None
    when no format has this length."""
    layout = next((f for f in formats if f.length == length), None)
    if layout is None:
        return None
    if not all(p.holds(value, length) for p in layout.parities):
        return False
    facility = layout.facility.of(value, length) if layout.facility else None
    return Card(layout, facility, layout.card.of(value, length), layout.data.of(value, length))


def _key(value: int, length: int) -> Key | Rejected:
    if length == 8:
        low, high = value & 0xF, value >> 4
        if high != low ^ 0xF:
            return Rejected(Rejection.BAD_KEY, length)
        value = low
    if value >= len(KEYS):
        return Rejected(Rejection.BAD_KEY, length)
    return Key(KEYS[value])


def decode(value: int, length: int, formats: tuple[WiegandFormat, ...]) -> Decoded:
    """One frame -> a card, a keypad key, or why it is not one. Never raises."""
    if length <= NOISE_BITS:
        return Rejected(Rejection.NOISE, length)
    if length > MAX_FRAME_BITS:
        return Rejected(Rejection.TOO_LONG, length)
    if length in (4, 8):
        return _key(value, length)
    card = _card(value, length, formats)
    if isinstance(card, Card):
        return card
    if card is None:
        return Rejected(Rejection.WRONG_LENGTH, length)
    inverted = _card(value ^ ((1 << length) - 1), length, formats)
    return Rejected(Rejection.SWAPPED if isinstance(inverted, Card) else Rejection.PARITY, length)


def encode(layout: WiegandFormat, facility: int, number: int) -> int:
    """The frame a reader sends for this card (tests, benchmarks, the simulator).
    ``facility`` is ignored by layouts without one; ``ValueError`` when out of range."""
    length = layout.length
    value = 0
    fields = [(layout.card, number)]
    if layout.facility is not None:
        fields.append((layout.facility, facility))
    for span, field in fields:
        if not 0 <= field < 1 << span.width:
            raise ValueError(f"{field} does not fit {span.width} bits of {layout.name}")
        value |= field << (length - span.start - span.width)
    for parity in layout.parities:
        ones = parity.covers.of(value, length).bit_count()
        if ones % 2 != (1 if parity.odd else 0):
            value |= 1 << (length - 1 - parity.position)
    return value
