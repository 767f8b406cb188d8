"""MOCO presences as values, and the strict parser of their JSON (moco-presences.txt).

A presence is one day's interval at minute resolution: ``date`` "2018-07-03", ``from``
"07:30", ``to`` "13:15" or null while it is open. Times are wall-clock times of the
account's day, which the gateway takes as its own local time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from gateway.cobot.errors import MalformedResponse

_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True, slots=True)
class Presence:
    id: int
    date: date
    start: time  # "from"
    end: time | None  # "to"; None: still open
    user_id: int | None = None
    user_name: str | None = None  # "firstname lastname" (for status, redacted there)

    @property
    def open(self) -> bool:
        return self.end is None

    def describe(self) -> str:
        """``"2026-11-30 08:00-12:30"`` (``"08:00-open"`` while open): for logs."""
        end = fmt_time(self.end) if self.end is not None else "open"
        return f"{self.date.isoformat()} {fmt_time(self.start)}-{end}"


def fmt_time(value: time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def parse_time(value: object, what: str) -> time:
    if not isinstance(value, str) or not _HHMM.fullmatch(value):
        raise MalformedResponse(f"{what}: expected a time like '07:30', got {value!r}")
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def minute_of(moment: datetime) -> time:
    """The local wall-clock minute of an aware moment (MOCO's resolution)."""
    local = moment.astimezone()
    return time(local.hour, local.minute)


def parse_presence(obj: Any, what: str = "presence") -> Presence:
    """One presence object; raises ``MalformedResponse`` naming the bad field."""
    if not isinstance(obj, dict):
        raise MalformedResponse(f"{what}: expected an object, got {type(obj).__name__}")
    pid = obj.get("id")
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise MalformedResponse(f"{what}: id: expected an integer, got {pid!r}")
    raw_date = obj.get("date")
    try:
        day = date.fromisoformat(raw_date) if isinstance(raw_date, str) else None
    except ValueError:
        day = None
    if day is None:
        raise MalformedResponse(f"{what}: date: expected 'YYYY-MM-DD', got {raw_date!r}")
    start = parse_time(obj.get("from"), f"{what}: from")
    raw_to = obj.get("to")
    end = None if raw_to in (None, "") else parse_time(raw_to, f"{what}: to")
    user = obj.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    name = None
    if isinstance(user, dict):
        parts = [user.get("firstname"), user.get("lastname")]
        name = " ".join(p for p in parts if isinstance(p, str) and p) or None
    return Presence(pid, day, start, end, user_id if isinstance(user_id, int) else None, name)


def parse_presences(obj: Any, what: str = "presences") -> list[Presence]:
    if not isinstance(obj, list):
        raise MalformedResponse(f"{what}: expected a list, got {type(obj).__name__}")
    return [parse_presence(item, f"{what}[{i}]") for i, item in enumerate(obj)]
