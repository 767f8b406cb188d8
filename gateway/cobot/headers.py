"""Pure parsers for the response headers the client reads; none of them raises.

A header is whatever the network sent: a proxy, a captive portal or a broken server can
put anything there. Each parser returns a usable value and, when it had to substitute
or cap one, a short ``problem`` for the caller to log (once).
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime

# A 429 without a usable Retry-After waits one whole rate-limit window (Cobot's limits
# are per minute: the general/OAuth/rate-limits page).
DEFAULT_RETRY_AFTER = 60.0
# The longest we obey. Cobot's windows are a minute long, so a legitimate Retry-After is
# under 60 s; a larger one is a misconfigured proxy, a wrong clock or a bug, and obeying
# it would hold every request (and send every tap to the offline policy) for as long.
# After this we simply ask again: one request, answered with another 429 if needed.
MAX_RETRY_AFTER = 300.0

_DIGITS = re.compile(r"[0-9]+")  # RFC 9110 delay-seconds: 1*DIGIT, ASCII digits only
_MAX_DIGITS = 12  # int() of thousands of digits is slow (and refused past 4300)


@dataclass(frozen=True, slots=True)
class Delay:
    seconds: float
    problem: str | None = None  # why the value was replaced or capped; None when as sent


def http_date(value: str | None) -> datetime | None:
    """An HTTP-date (RFC 9110 5.6.7: IMF-fixdate and the two obsolete forms) as an aware
    UTC datetime, or None when absent or unreadable."""
    if not value or not value.isascii() or len(value) > 64:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC as far as HTTP is concerned
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def retry_after(value: str | None, date: str | None = None, now: datetime | None = None) -> Delay:
    """Seconds to wait from a ``Retry-After`` (RFC 9110 10.2.3): delay-seconds or an
    HTTP-date.

    A date is read against the response's own ``Date`` header, so a gateway clock that is
    hours off (a Pi before NTP) does not turn "in 30 s" into "in 3 h"; only without a
    usable ``Date`` is ``now`` (the gateway's clock) the reference. The result is at
    most ``MAX_RETRY_AFTER``; garbage gives ``DEFAULT_RETRY_AFTER``.
    """
    if value is None or not value.strip():
        return Delay(DEFAULT_RETRY_AFTER, "429 without a Retry-After")
    text = value.strip()
    if _DIGITS.fullmatch(text):
        if len(text) > _MAX_DIGITS or int(text) > MAX_RETRY_AFTER:
            return Delay(MAX_RETRY_AFTER, f"Retry-After {text[:20]!r} capped")
        return Delay(float(int(text)))
    when = http_date(text)
    if when is None:
        return Delay(DEFAULT_RETRY_AFTER, f"unreadable Retry-After {text[:40]!r}")
    sent = http_date(date)
    problem = None
    if sent is None:
        sent = now or datetime.now(UTC)
        problem = "Retry-After is a date but the response has no usable Date: own clock used"
    seconds = (when - sent).total_seconds()
    if seconds > MAX_RETRY_AFTER:
        return Delay(MAX_RETRY_AFTER, f"Retry-After {text[:40]!r} capped")
    return Delay(max(0.0, seconds), problem)


_AUTH_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]*))')
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,64}")  # RFC 6749 scope-token


def missing_scope(www_authenticate: str | None, body: object = None) -> str | None:
    """The scope a 403 names: ``WWW-Authenticate: Bearer error="insufficient_scope",
    scope="..."`` (RFC 6750 3.1), else a JSON body's ``"scope"``; None when neither
    names a well-formed one. Several scopes come back space-separated."""
    found: str | None = None
    if www_authenticate and www_authenticate.isascii():
        params = {
            m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _AUTH_PARAM.finditer(www_authenticate[:1024])
        }
        found = params.get("scope")
    if found is None and isinstance(body, dict):
        value = body.get("scope")
        found = value if isinstance(value, str) else None
    if not found:
        return None
    tokens = found.split()
    if not tokens or not all(_SCOPE_TOKEN.fullmatch(t) for t in tokens):
        return None
    return " ".join(tokens)
