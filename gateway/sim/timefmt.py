"""Times as the Cobot API writes and reads them, and the space's business day.

Deliberately independent of ``gateway.cobot.parse``: the simulator is the yardstick
for the client, so sharing the client's formatter would hide a bug in it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo

# Every time the docs show is "2012/10/25 10:05:24 +0000" (the check-out example omits
# the zone; we always write it, in UTC, like every other example).
WIRE_FORMAT = "%Y/%m/%d %H:%M:%S %z"

# What we accept from clients: the API's own format, the dashed form its query examples
# use ("2010-01-01 12:00:00 +0000"), and ISO 8601.
_INPUT_FORMATS = (
    "%Y/%m/%d %H:%M:%S %z",
    "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S %z",
    "%Y-%m-%d %H:%M:%S",
)

END_OF_DAY = time(23, 59, 59)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime(WIRE_FORMAT)


def parse_time(value: str, zone: tzinfo) -> datetime | None:
    """A client-supplied time, or None when unreadable.

    A time without an offset is read in the space's time zone (what a Rails app with
    ``Time.zone`` set to the space's zone does). Nothing else is guessed: in particular a
    query string whose "+0000" arrived as " 0000" (an unencoded plus) is unreadable, so
    a client that forgets to encode it finds out here rather than at the real Cobot.
    """
    text = value.strip()
    parsed: datetime | None = None
    for fmt in _INPUT_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def business_day(moment: datetime, zone: tzinfo) -> date:
    return moment.astimezone(zone).date()


def end_of_business_day(moment: datetime, zone: tzinfo) -> datetime:
    """23:59:59 of ``moment``'s day in the space's zone, as a UTC datetime."""
    day = business_day(moment, zone)
    return datetime.combine(day, END_OF_DAY, tzinfo=zone).astimezone(UTC)
