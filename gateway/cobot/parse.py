"""Pure conversion of Cobot's JSON into our values; garbage raises MalformedResponse."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.cobot.errors import MalformedResponse
from gateway.model import CheckIn, Membership, TokenRecord

# Cobot writes "2012/10/25 10:05:24 +0000"; the check-out example omits the zone, which
# we read as UTC (the API gives no other hint). ISO 8601 is accepted as well.
_FORMATS = ("%Y/%m/%d %H:%M:%S %z", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M %z")


_MAX_TIME = 64  # the longest time string worth reading
_MAX_ID = 256  # ids are 10-32 hex digits in the docs; this leaves room without abuse


def parse_time(value: object, what: str) -> datetime:
    """A time from the API as an aware UTC datetime. A zone that pushes the time out of
    datetime's range ("0001/01/01 00:00:00 +0100") is unreadable, not an OverflowError
    later in whoever compares it."""
    if not isinstance(value, str):
        raise MalformedResponse(f"{what}: expected a time string, got {type(value).__name__}")
    if len(value) > _MAX_TIME or not value.isprintable():
        raise MalformedResponse(f"{what}: unreadable time {value[:40]!r}")
    parsed: datetime | None = None
    for fmt in _FORMATS:
        try:
            parsed = datetime.strptime(value, fmt)  # zone handled below
            break
        except ValueError:
            continue
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise MalformedResponse(f"{what}: unreadable time {value[:40]!r}") from None
    try:
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        raise MalformedResponse(f"{what}: time out of range {value[:40]!r}") from None


def format_time(value: datetime) -> str:
    """The API's own time format, in UTC."""
    return value.astimezone(UTC).strftime("%Y/%m/%d %H:%M:%S +0000")


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedResponse(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _str(value: object, what: str) -> str:
    """An id or token: a non-empty printable string of bounded length."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**_MAX_ID:
        return str(value)  # ids are documented as strings; accept numbers defensively
    if not isinstance(value, str) or not value:
        raise MalformedResponse(f"{what}: expected a non-empty string")
    if len(value) > _MAX_ID or not value.isprintable() or value != value.strip():
        raise MalformedResponse(f"{what}: not a usable id ({len(value)} characters)")
    return value


def parse_membership(value: object, what: str = "membership") -> Membership:
    obj = _obj(value, what)
    name = obj.get("name")
    return Membership(
        id=_str(obj.get("id"), f"{what}.id"), name=name if isinstance(name, str) else ""
    )


def parse_check_in(value: object) -> CheckIn:
    obj = _obj(value, "check-in")
    membership = obj.get("membership")
    time_pass = obj.get("time_pass")
    check_in_id = obj.get("id")
    return CheckIn(
        id=_str(check_in_id, "check-in.id") if check_in_id is not None else None,
        valid_from=parse_time(obj.get("valid_from"), "check-in.valid_from"),
        valid_until=parse_time(obj.get("valid_until"), "check-in.valid_until"),
        membership=parse_membership(membership) if membership is not None else None,
        time_pass_id=(
            _str(_obj(time_pass, "time_pass").get("id"), "time_pass.id")
            if time_pass is not None
            else None
        ),
    )


def parse_warning(value: object) -> str | None:
    """Cobot "returns a warning" when a token is already registered to someone else; the
    docs do not show its form, so a string, list or mapping of messages is accepted."""
    if not isinstance(value, dict):
        return None
    warning = value.get("warning", value.get("warnings"))
    if warning is None:
        return None
    return _messages(warning) or None


def parse_token_list(value: object) -> list[TokenRecord]:
    if not isinstance(value, list):
        raise MalformedResponse(f"check_in_tokens: expected a list, got {type(value).__name__}")
    records = []
    for i, item in enumerate(value):
        obj = _obj(item, f"check_in_tokens[{i}]")
        records.append(
            TokenRecord(
                token=_str(obj.get("token"), f"check_in_tokens[{i}].token"),
                membership=parse_membership(
                    obj.get("membership"), f"check_in_tokens[{i}].membership"
                ),
            )
        )
    return records


_MAX_DEPTH = 8  # error messages nest two or three levels; deeper is garbage
_MAX_MESSAGE = 500


def _messages(value: object, depth: int = 0) -> str:
    """Messages of an error body, flattened; bounded in depth and length, since the
    body is whatever the server sent."""
    if depth > _MAX_DEPTH:
        return "..."
    if isinstance(value, str):
        text = value
    elif isinstance(value, list):
        text = "; ".join(_messages(v, depth + 1) for v in value[:20])
    elif isinstance(value, dict):
        parts = []
        for key, msg in list(value.items())[:20]:
            inner = _messages(msg, depth + 1)
            parts.append(inner if key in ("base", "error", "message") else f"{key}: {inner}")
        text = "; ".join(parts)
    else:
        text = str(value)
    return text[:_MAX_MESSAGE]


def refusal_reason(body: object) -> tuple[str, dict[str, object]]:
    """The words of a 422, e.g. ``{"errors": {"login": "Login or password incorrect."}}``
    -> ``"login: Login or password incorrect."``."""
    if isinstance(body, dict):
        errors = body.get("errors", body.get("error", body))
        reason = _messages(errors)
        return reason or "refused", errors if isinstance(errors, dict) else {"base": errors}
    if isinstance(body, str) and body.strip():
        return body.strip()[:200], {"base": body.strip()[:200]}
    return "refused (no reason given)", {}
