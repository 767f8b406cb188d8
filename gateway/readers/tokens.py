"""How a card's bytes become the token string Cobot knows.

Systems print the same card differently; ``token_format`` picks the form that matches
the tokens already registered in Cobot. Readers pass the bytes that identify the card:
the 5 EM4100 bytes (version + 4 id bytes) from an RDM6300, the UID from NFC.
"""

from __future__ import annotations

from gateway.model import TokenFormat

# For EM4100 cards the printed decimal is the last four bytes (the version byte is not
# printed); for NFC UIDs the whole UID is the number.
_DECIMAL_WIDTH = 10


def format_token(fmt: TokenFormat, raw: bytes, *, id_bytes: int | None = None) -> str:
    """Format ``raw``; ``id_bytes`` limits the decimal forms to the last N bytes."""
    if not raw:
        raise ValueError("empty card id")
    number = raw[-id_bytes:] if id_bytes else raw
    match fmt:
        case TokenFormat.HEX:
            return raw.hex().upper()
        case TokenFormat.HEX_REVERSED:
            return raw[::-1].hex().upper()
        case TokenFormat.DECIMAL:
            return str(int.from_bytes(number, "big")).zfill(_DECIMAL_WIDTH)
        case TokenFormat.DECIMAL_REVERSED:
            return str(int.from_bytes(number[::-1], "big")).zfill(_DECIMAL_WIDTH)
        case TokenFormat.WIEGAND26:
            low = int.from_bytes(raw[-3:], "big")
            return f"{(low >> 16) & 0xFF:03d},{low & 0xFFFF:05d}"


# Invisible characters that copy-paste, keyboard-wedge software and some USB readers put
# around (or into) a token: zero width space, non-joiner, joiner, word joiner, and the
# byte order mark (also "zero width no-break space").
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")


def normalize_text_token(text: str) -> str | None:
    """A token as a line reader (serial ``line`` protocol, keyboard) received it -> the
    token, or None when the line is no token. The same rule for every text reader:

    1. zero-width characters (``ZERO_WIDTH``) are removed wherever they are;
    2. white space around the token is removed (any Unicode white space, CR, LF, tab,
       no-break space); white space inside it is kept (``"ABC 123"``);
    3. what is left must be printable (``str.isprintable``): a line with a control
       character (an escape sequence, a NUL, line noise at the wrong baud rate) is
       not cleaned up but rejected whole, since it is not what the card says;
    4. an empty line is no token.
    """
    if not ZERO_WIDTH.isdisjoint(text):
        text = "".join(c for c in text if c not in ZERO_WIDTH)
    text = text.strip()
    if not text or not text.isprintable():
        return None
    return text
