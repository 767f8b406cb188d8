"""Secrets in logs: card numbers, MACs, logins, passwords and API tokens are masked.

The last two characters stay visible so that a person comparing a log with a card in
hand can tell cards apart; the length stays so that a truncated read is noticeable.
Member ids are not secret and are what logs should be correlated by.

Redaction happens once, centrally, so no call site can forget it:

- ``redaction_processor`` (structlog) masks values under a sensitive key and scrubs
  every other string value (and rendered tracebacks) with ``redact_text``;
- ``RedactingFormatter`` does the same for stdlib logging (aiohttp, nfcpy, asyncio);
- ``redact_text`` masks what can carry a secret inside free text: a URL's query values
  under a sensitive name, the token in ``/api/check_in_tokens/<token>``, a URL's
  user-info, ``Bearer`` credentials, MAC addresses, e-mail addresses (Cobot logins),
  and any secret the process was told about with ``remember`` (the access token, and
  the most recent tokens, logins and passwords the API client sent: an answer or an
  error that quotes one back is masked too).
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Mapping, MutableMapping
from typing import Any

SENSITIVE_KEYS = frozenset(
    {
        "token",
        "card",
        "uid",
        "mac",
        "password",
        "access_token",
        "authorization",
        "login",
        "api_key",  # MOCO's
        "email",
        "secret",
        "client_secret",
        "code",
        "code_verifier",
        "refresh_token",
    }
)
_KEEP = 2


def redact(secret: str | None) -> str:
    """``"04A1B2C3D4"`` -> ``"********D4"``; short secrets are masked whole."""
    if secret is None:
        return "-"
    if len(secret) <= _KEEP * 3:
        return "*" * len(secret)
    return "*" * (len(secret) - _KEEP) + secret[-_KEEP:]


def redact_mapping(event: Mapping[str, Any]) -> dict[str, Any]:
    return {k: redact(str(v)) if k in SENSITIVE_KEYS and v else v for k, v in event.items()}


# --- known secrets ---------------------------------------------------------------------

_REMEMBER_MAX = 64  # the latest requests' secrets; every log line pays for each
_REMEMBER_MIN_LEN = 6  # shorter values would mask ordinary words; the patterns cover them
_known: OrderedDict[str, None] = OrderedDict()
_pinned: set[str] = set()  # never forgotten: the access token


def remember(secret: str | None, *, pin: bool = False) -> None:
    """Mask ``secret`` wherever it appears in a later log line: the most recent 64, and
    for ever when ``pin``."""
    if not secret or len(secret) < _REMEMBER_MIN_LEN:
        return
    if pin:
        _pinned.add(secret)
        return
    _known[secret] = None
    _known.move_to_end(secret)
    while len(_known) > _REMEMBER_MAX:
        _known.popitem(last=False)


def forget_all() -> None:
    """For tests."""
    _known.clear()
    _pinned.clear()


# --- free text -------------------------------------------------------------------------

_QUERY_KEYS = "|".join(sorted(SENSITIVE_KEYS, key=len, reverse=True))
# One pass over the text: each alternative is a named group; ``_hide`` masks the part
# that is secret and keeps its label (the query key, the path, the scheme).
_SECRETS = re.compile(
    "|".join(
        (
            # key=value in a query string or form body; the value runs to a separator
            rf"(?P<q>[?&;](?i:{_QUERY_KEYS})=)(?P<qv>[^&;#\s'\"<>]+)",
            # the only path of ours carrying a secret: a check-in token (card or MAC)
            r"(?P<p>/api/check_in_tokens/)(?P<pv>[^/?#\s'\"<>]+)",
            # user-info in a URL
            r"(?P<u>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<uv>[^/@\s'\"]+)@",
            r"(?P<b>\b[Bb]earer\s+)(?P<bv>[A-Za-z0-9._~+/=-]+)",
            # MACs: aa:bb:cc:dd:ee:ff, aa-bb-..., aabb.ccdd.eeff
            r"(?P<m>(?<![0-9A-Fa-f:-])[0-9A-Fa-f]{2}(?P<ms>[:-])(?:[0-9A-Fa-f]{2}(?P=ms)){4}"
            r"[0-9A-Fa-f]{2}(?![0-9A-Fa-f:-]))",
            r"(?P<d>(?<![0-9A-Fa-f.])[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}(?![0-9A-Fa-f.]))",
            # e-mail addresses (Cobot logins), also with "@" percent-encoded
            r"(?P<e>[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)",
        )
    )
)


def _hide(m: re.Match[str]) -> str:
    for label, value in (("q", "qv"), ("p", "pv"), ("b", "bv")):
        if m.group(label) is not None:
            return m.group(label) + redact(m.group(value))
    if m.group("u") is not None:
        return m.group("u") + "***@"
    return redact(m.group(0))


def redact_text(text: str) -> str:
    """``text`` with every secret this module can recognise masked (see module doc)."""
    if len(text) < 5:  # nothing recognisable is shorter than "a@b.c"
        return text
    for secret in (*_pinned, *_known):
        if secret in text:
            text = text.replace(secret, redact(secret))
    return _SECRETS.sub(_hide, text)


def redact_url(url: str) -> str:
    """A URL or path (``GET /api/check_in_tokens/04A1B2C3D4?x=1``) safe to log."""
    return redact_text(url)


def _scrub(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if depth > 3:
        return value
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return {
            k: (_mask(v) if k in SENSITIVE_KEYS else _scrub(v, depth + 1)) for k, v in value.items()
        }
    return value


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return value if not value or value.startswith("*") else redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


def redaction_processor(
    _logger: object, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: values under a sensitive key are masked, every other string
    scrubbed with ``redact_text``. Runs after ``format_exc_info``, so tracebacks too.
    Already-masked values (starting with ``*``) are left alone."""
    for key, value in list(event_dict.items()):
        if key in SENSITIVE_KEYS:
            event_dict[key] = _mask(value)
        else:
            event_dict[key] = _scrub(value)
    return event_dict


class RedactingFormatter(logging.Formatter):
    """A stdlib formatter whose whole output (message, arguments, traceback) is scrubbed:
    for the libraries that log through ``logging`` (aiohttp, asyncio, nfcpy, scapy)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))
