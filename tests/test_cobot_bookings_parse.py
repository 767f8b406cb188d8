"""The two time formats of the bookings pages, parsed strictly, and garbage refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.cobot.bookings import (
    format_request_time,
    parse_booking,
    parse_bookings,
    parse_request_time,
    parse_resource,
    parse_response_time,
)
from gateway.cobot.errors import MalformedResponse

DOCS_BOOKING = {
    "id": "20723075",
    "from": "2012/04/12 12:00:00 +0000",
    "to": "2012/04/12 18:00:00 +0000",
    "title": "event booking",
    "resource": {"name": "Meeting Room", "id": "12345"},
    "units": 1,
    "event": {"id": "event-id"},
    "membership": {"id": "123498y452346", "name": "John Doe"},
}


def test_request_format_round_trip_in_utc() -> None:
    berlin = timezone(timedelta(hours=2))
    moment = datetime(2012, 4, 12, 14, 0, 59, tzinfo=berlin)
    assert format_request_time(moment) == "2012-04-12 12:00 +0000"  # seconds dropped
    assert parse_request_time("2012-04-12 12:00 +0200") == datetime(2012, 4, 12, 10, tzinfo=UTC)
    for bad in ("2012-04-12 12:00", "2012/04/12 12:00:00 +0000", "2012-01-1 12:00 +0000", ""):
        with pytest.raises(ValueError, match="expected a time like"):
            parse_request_time(bad)


def test_response_format_strict() -> None:
    assert parse_response_time("2012/01/01 12:00:00 +0100", "t") == datetime(
        2012, 1, 1, 11, tzinfo=UTC
    )
    for bad in ("2012-01-01 12:00 +0000", "2012/01/01 12:00:00", "2012/02/30 12:00:00 +0000", 5):
        with pytest.raises(MalformedResponse):
            parse_response_time(bad, "booking.from")


def test_the_docs_booking() -> None:
    booking = parse_booking(DOCS_BOOKING)
    assert booking.event_id == "event-id" and booking.resource_id == "12345"
    assert booking.membership is not None and booking.membership.name == "John Doe"
    assert booking.end - booking.start == timedelta(hours=6)
    blocked = parse_booking({k: v for k, v in DOCS_BOOKING.items() if k != "membership"})
    assert blocked.membership is None


@pytest.mark.parametrize(
    "change",
    [
        {"from": "2012-04-12 12:00 +0000"},
        {"to": "2012/04/11 12:00:00 +0000"},  # ends before it starts
        {"resource": None},
        {"id": ""},
        {"units": "two"},
        {"membership": {"name": "no id"}},
        {"event": "x"},
    ],
)
def test_garbage_booking_is_malformed(change: dict[str, object]) -> None:
    with pytest.raises(MalformedResponse):
        parse_bookings([{**DOCS_BOOKING, **change}], "bookings")


def test_resource_booking_times_and_units() -> None:
    docs = {
        "id": "12355",
        "name": "Room",
        "can_book": True,
        "min_booking_duration": 0,
        "max_booking_duration": 120,
        "booking_times": [{"from": "10:00", "to": "17:00", "weekdays": [1, 2]}],
    }
    resource = parse_resource(docs)
    assert resource.units == 1 and resource.max_booking_duration == 120
    assert resource.booking_times[0].weekdays == (1, 2)
    assert parse_resource({**docs, "units": 3}).units == 3
    for bad in ({"booking_times": [{"from": "25:00", "to": "17:00"}]}, {"name": None}):
        with pytest.raises(MalformedResponse):
            parse_resource({**docs, **bad})
