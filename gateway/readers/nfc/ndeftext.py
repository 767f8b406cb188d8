"""A token carried in an NDEF text record: a sticker, a key fob or a phone app.

Only NFC Forum text records (``urn:nfc:wkt:T``) count; a URI or a vCard on a member's
own tag is not a token. The first text record that looks like a token wins.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.readers.tokens import normalize_text_token

TEXT_RECORD_TYPE = "urn:nfc:wkt:T"
MAX_TOKEN_LENGTH = 128


def text_token(records: Iterable[object]) -> str | None:
    """The token in the first usable text record, normalised as every text token is
    (``gateway.readers.tokens.normalize_text_token``); None if there is none.

    Takes ndeflib records (``tag.ndef.records``); anything else is skipped, so a
    malformed record decoded in nfcpy's relaxed mode cannot raise here.
    """
    for record in records:
        if getattr(record, "type", None) != TEXT_RECORD_TYPE:
            continue
        text = getattr(record, "text", None)
        if not isinstance(text, str):
            continue
        token = normalize_text_token(text)
        if token is not None and len(token) <= MAX_TOKEN_LENGTH:
            return token
    return None
