from __future__ import annotations

import pytest

from gateway.readers.tokens import TokenFormat, format_token, normalize_text_token
from gateway.redact import redact, redact_mapping

EM4100 = bytes.fromhex("0A1B2C3D4E")  # version 0x0A, id 0x1B2C3D4E


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (TokenFormat.HEX, "0A1B2C3D4E"),
        (TokenFormat.HEX_REVERSED, "4E3D2C1B0A"),
        (TokenFormat.DECIMAL, "0455884110"),  # 0x1B2C3D4E, as printed on the card
        (TokenFormat.DECIMAL_REVERSED, "1312631835"),  # 0x4E3D2C1B
        (TokenFormat.WIEGAND26, "044,15694"),  # facility 0x2C, number 0x3D4E
    ],
)
def test_em4100_formats(fmt: TokenFormat, expected: str) -> None:
    assert format_token(fmt, EM4100, id_bytes=4) == expected


def test_nfc_uid_formats() -> None:
    uid = bytes.fromhex("04a1b2c3d4e5f6")
    assert format_token(TokenFormat.HEX, uid) == "04A1B2C3D4E5F6"
    assert format_token(TokenFormat.HEX_REVERSED, uid) == "F6E5D4C3B2A104"
    assert format_token(TokenFormat.DECIMAL, bytes.fromhex("01020304")) == "0016909060"


def test_empty_id_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        format_token(TokenFormat.HEX, b"")


def test_redaction_keeps_only_the_tail() -> None:
    assert redact("0A1B2C3D4E") == "********4E"
    assert redact("secret") == "******"
    assert redact(None) == "-"
    out = redact_mapping({"token": "0A1B2C3D4E", "password": "hunter2hunter2", "reader": "front"})
    assert out == {"token": "********4E", "password": "************r2", "reader": "front"}


@pytest.mark.parametrize(
    ("line", "token"),
    [
        ("0A1B2C3D4E", "0A1B2C3D4E"),
        ("  0A1B2C3D4E \t", "0A1B2C3D4E"),
        ("\u00a00A1B2C3D4E\u3000", "0A1B2C3D4E"),  # no-break and ideographic space
        ("\ufeff0A1B2C3D4E", "0A1B2C3D4E"),  # a byte order mark in front
        ("0A1B\u200b2C3D4E\u200d", "0A1B2C3D4E"),  # zero-width space and joiner inside
        ("\u2060 member-42 \u200c", "member-42"),
        ("ABC 123", "ABC 123"),  # white space inside is part of the token
        ("Zoë-7", "Zoë-7"),
        ("", None),
        (" \t ", None),
        ("\u200b", None),
        ("\x1b[A", None),  # an arrow key's escape sequence: rejected, not cleaned up
        ("AB\x00CD", None),
        ("AB\x7fCD", None),
        ("AB\u0085CD", None),  # a C1 control
        ("AB\tCD", None),
    ],
)
def test_text_tokens_are_normalised_one_way(line: str, token: str | None) -> None:
    assert normalize_text_token(line) == token


def test_ndef_text_tokens_follow_the_same_rule() -> None:
    import ndef

    from gateway.readers.nfc.ndeftext import text_token

    # A phone app that writes a byte order mark and a trailing zero-width space.
    assert text_token([ndef.TextRecord("\ufeffmember-42\u200b ")]) == "member-42"
    assert text_token([ndef.TextRecord("\x1b[A"), ndef.TextRecord(" ok-7 ")]) == "ok-7"
    assert text_token([ndef.UriRecord("https://example.org")]) is None
