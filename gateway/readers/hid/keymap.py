"""Key codes -> characters, for the keyboard layout a USB reader types for.

A keyboard-wedge reader sends key codes as if typed on a keyboard of some layout: set
up for a French host, it types "1" as Shift + the key left of "2". We map the codes
back with the same layout. Only what card readers type is mapped: digits (number row
and keypad), letters (hex tokens, some readers' prefixes) and a few separators. Codes
are Linux input event codes (``linux/input-event-codes.h``, via ``evdev.ecodes``).
"""

from __future__ import annotations

from collections.abc import Mapping

from evdev import ecodes as e

# The number row, left to right (KEY_1 .. KEY_0).
NUMBER_ROW = (
    e.KEY_1, e.KEY_2, e.KEY_3, e.KEY_4, e.KEY_5, e.KEY_6, e.KEY_7, e.KEY_8, e.KEY_9, e.KEY_0,
)  # fmt: skip
# Keypad digits do not depend on the layout (with Num Lock on, as readers assume).
KEYPAD: Mapping[int, str] = {
    e.KEY_KP0: "0", e.KEY_KP1: "1", e.KEY_KP2: "2", e.KEY_KP3: "3", e.KEY_KP4: "4",
    e.KEY_KP5: "5", e.KEY_KP6: "6", e.KEY_KP7: "7", e.KEY_KP8: "8", e.KEY_KP9: "9",
    e.KEY_KPMINUS: "-", e.KEY_KPPLUS: "+", e.KEY_KPDOT: ".", e.KEY_KPSLASH: "/",
    e.KEY_KPASTERISK: "*",
}  # fmt: skip
ENTER = frozenset({e.KEY_ENTER, e.KEY_KPENTER})
SHIFT = frozenset({e.KEY_LEFTSHIFT, e.KEY_RIGHTSHIFT})

_LETTER_ROWS = (
    (e.KEY_Q, e.KEY_W, e.KEY_E, e.KEY_R, e.KEY_T, e.KEY_Y, e.KEY_U, e.KEY_I, e.KEY_O, e.KEY_P),
    (e.KEY_A, e.KEY_S, e.KEY_D, e.KEY_F, e.KEY_G, e.KEY_H, e.KEY_J, e.KEY_K, e.KEY_L),
    (e.KEY_Z, e.KEY_X, e.KEY_C, e.KEY_V, e.KEY_B, e.KEY_N, e.KEY_M),
)
_QWERTY = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_QWERTZ = ("qwertzuiop", "asdfghjkl", "yxcvbnm")
_AZERTY = ("azertyuiop", "qsdfghjkl", "wxcvbn")  # the M key is right of L on AZERTY


def _layout(
    letters: tuple[str, ...],
    digits: str,
    shifted_digits: str,
    extra: Mapping[int, tuple[str, str]],
) -> dict[int, tuple[str, str]]:
    """code -> (unshifted, shifted)."""
    table: dict[int, tuple[str, str]] = {}
    for codes, chars in zip(_LETTER_ROWS, letters, strict=True):
        for code, char in zip(codes, chars, strict=False):
            table[code] = (char, char.upper())
    for code, plain, shifted in zip(NUMBER_ROW, digits, shifted_digits, strict=True):
        table[code] = (plain, shifted)
    table.update(extra)
    return table


LAYOUTS: Mapping[str, Mapping[int, tuple[str, str]]] = {
    "us": _layout(
        _QWERTY, "1234567890", "!@#$%^&*()",
        {e.KEY_MINUS: ("-", "_"), e.KEY_EQUAL: ("=", "+"), e.KEY_SEMICOLON: (";", ":"),
         e.KEY_COMMA: (",", "<"), e.KEY_DOT: (".", ">"), e.KEY_SLASH: ("/", "?"),
         e.KEY_SPACE: (" ", " ")},
    ),
    "uk": _layout(
        _QWERTY, "1234567890", '!"£$%^&*()',
        {e.KEY_MINUS: ("-", "_"), e.KEY_EQUAL: ("=", "+"), e.KEY_SEMICOLON: (";", ":"),
         e.KEY_COMMA: (",", "<"), e.KEY_DOT: (".", ">"), e.KEY_SLASH: ("/", "?"),
         e.KEY_SPACE: (" ", " ")},
    ),
    "de": _layout(
        _QWERTZ, "1234567890", '!"§$%&/()=',
        {e.KEY_SLASH: ("-", "_"), e.KEY_COMMA: (",", ";"), e.KEY_DOT: (".", ":"),
         e.KEY_SPACE: (" ", " ")},
    ),
    "fr": _layout(
        _AZERTY, "&é\"'(-è_çà", "1234567890",
        {e.KEY_SEMICOLON: ("m", "M"), e.KEY_M: (",", "?"), e.KEY_COMMA: (";", "."),
         e.KEY_DOT: (":", "/"), e.KEY_SPACE: (" ", " ")},
    ),
}  # fmt: skip


def char_for(layout: Mapping[int, tuple[str, str]], code: int, shift: bool) -> str | None:
    """The character ``code`` types (keypad first), or None for keys we do not map."""
    if code in KEYPAD:
        return KEYPAD[code]
    pair = layout.get(code)
    if pair is None:
        return None
    return pair[1] if shift else pair[0]
