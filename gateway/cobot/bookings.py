"""Cobot resources and bookings (cobot-resources.txt, cobot-bookings.txt): values, strict
parsers of the API's two time formats, and the calls the booking doors make.

The two pages write times differently, and we keep them apart on purpose:

- requests (query ``from``/``to``, booking bodies): ``2012-04-12 12:00 +0000``, to the
  minute (``REQUEST_FORMAT``);
- responses: ``2012/04/12 12:00:00 +0000`` (``RESPONSE_FORMAT``).

Both parsers accept exactly their format (two-digit fields, an explicit offset) and raise
on anything else: a booking whose times we cannot read must not open a door by guesswork.

The calls go through ``CobotClient._request`` (the shared limiter, deadlines, typed
errors). Booking writes have their own limit, 10 per minute (bookings page, POST): they
take a slot in ``Group.BOOKING_WRITES`` first and then, like every request, one in the
general group, so we stay inside both whatever way Cobot counts.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from gateway.cobot.client import CobotClient
from gateway.cobot.endpoints import ENDPOINTS, Endpoint
from gateway.cobot.errors import MalformedResponse, NoSlot, RateLimited
from gateway.cobot.ratelimit import Group, Priority
from gateway.model import Membership

REQUEST_FORMAT = "%Y-%m-%d %H:%M %z"
RESPONSE_FORMAT = "%Y/%m/%d %H:%M:%S %z"
_REQUEST_RE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} [+-]\d{4}")
_RESPONSE_RE = re.compile(r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}")
_CLOCK_RE = re.compile(r"\d{2}:\d{2}")
BOOKING_WRITES_RPM = 10  # bookings page: "Rate limit 10 rpm" on POST


def format_request_time(value: datetime) -> str:
    """``2012-04-12 12:00 +0000`` in UTC; seconds are dropped (the format has none)."""
    if value.tzinfo is None:
        raise ValueError("format_request_time needs an aware datetime")
    return value.astimezone(UTC).strftime(REQUEST_FORMAT)


def parse_request_time(value: str) -> datetime:
    """The request format, strictly; ValueError otherwise (the simulator's reading)."""
    if not _REQUEST_RE.fullmatch(value):
        raise ValueError(f"expected a time like '2012-04-12 12:00 +0000', got {value[:40]!r}")
    return datetime.strptime(value, REQUEST_FORMAT).astimezone(UTC)


def parse_response_time(value: object, what: str) -> datetime:
    """The response format (``2012/01/01 12:00:00 +0000``), strictly, as UTC."""
    if not isinstance(value, str) or not _RESPONSE_RE.fullmatch(value):
        shown = value[:40] if isinstance(value, str) else type(value).__name__
        raise MalformedResponse(
            f"{what}: expected a time like '2012/01/01 12:00:00 +0000', got {shown!r}"
        )
    try:
        return datetime.strptime(value, RESPONSE_FORMAT).astimezone(UTC)
    except ValueError:
        raise MalformedResponse(f"{what}: impossible time {value!r}") from None


@dataclass(frozen=True, slots=True)
class BookingTimes:
    """One entry of a resource's ``booking_times``: local wall-clock hours on ISO
    weekdays (1 = Monday; empty: every day)."""

    start: time
    end: time
    weekdays: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Resource:
    """A bookable resource (``GET /api/resources/:id``).

    ``units`` is how many bookings may overlap (a hot-desk area, three phone booths sold
    as one resource); the page shows no ``units`` field on a resource, so 1 when absent.
    """

    id: str
    name: str
    units: int = 1
    can_book: bool = True
    min_booking_duration: int = 0  # minutes
    max_booking_duration: int | None = None  # minutes
    booking_times: tuple[BookingTimes, ...] = ()


@dataclass(frozen=True, slots=True)
class Booking:
    """One booking of a resource: ``start``/``end`` are its ``from``/``to`` (UTC).

    ``membership`` is None for a booking nobody's membership holds (an admin blocking
    the room): it admits nobody. ``event_id`` is set for event bookings (which Cobot
    will not let us change: 409).
    """

    id: str
    resource_id: str
    start: datetime
    end: datetime
    membership: Membership | None
    units: int = 1
    event_id: str | None = None
    title: str = ""

    def holds(self, at: datetime, before: float = 0.0, after: float = 0.0) -> bool:
        """True when ``at`` lies in ``[start - before, end + after]`` (seconds, inclusive:
        the grace edges count to the second)."""
        return self.start.timestamp() - before <= at.timestamp() <= self.end.timestamp() + after


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedResponse(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _id(value: object, what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise MalformedResponse(f"{what}: expected a non-empty id")
    return value


def _int(value: object, what: str, default: int | None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedResponse(f"{what}: expected a whole number, got {value!r}")
    return value


def _clock(value: object, what: str) -> time:
    if not isinstance(value, str) or not _CLOCK_RE.fullmatch(value):
        raise MalformedResponse(f"{what}: expected 'HH:MM', got {value!r}")
    hours, minutes = int(value[:2]), int(value[3:])
    if hours == 24 and minutes == 0:
        return time(23, 59, 59)  # "to": "24:00", the end of the day
    if hours > 23 or minutes > 59:
        raise MalformedResponse(f"{what}: impossible time {value!r}")
    return time(hours, minutes)


def parse_resource(value: object) -> Resource:
    obj = _obj(value, "resource")
    name = obj.get("name")
    if not isinstance(name, str):
        raise MalformedResponse("resource.name: expected a string")
    times = obj.get("booking_times") or []
    if not isinstance(times, list):
        raise MalformedResponse("resource.booking_times: expected a list")
    parsed_times = []
    for i, entry in enumerate(times):
        item = _obj(entry, f"resource.booking_times[{i}]")
        days = item.get("weekdays") or []
        if not isinstance(days, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 7 for d in days
        ):
            raise MalformedResponse(f"resource.booking_times[{i}].weekdays: expected 1..7")
        parsed_times.append(
            BookingTimes(
                _clock(item.get("from"), f"resource.booking_times[{i}].from"),
                _clock(item.get("to"), f"resource.booking_times[{i}].to"),
                tuple(days),
            )
        )
    can_book = obj.get("can_book", True)
    return Resource(
        id=_id(obj.get("id"), "resource.id"),
        name=name,
        units=max(1, _int(obj.get("units"), "resource.units", 1) or 1),
        can_book=can_book if isinstance(can_book, bool) else True,
        min_booking_duration=_int(obj.get("min_booking_duration"), "resource.min", 0) or 0,
        max_booking_duration=_int(obj.get("max_booking_duration"), "resource.max", None),
        booking_times=tuple(parsed_times),
    )


class _Shared:
    """Equal members and strings as one object each across a list's parse: a busy room's
    hundreds of bookings are a few members (the snapshot's memory)."""

    __slots__ = ("members", "strings")

    def __init__(self) -> None:
        self.members: dict[tuple[str, str], Membership] = {}
        self.strings: dict[str, str] = {}

    def member(self, membership_id: str, name: str) -> Membership:
        key = (membership_id, name)
        found = self.members.get(key)
        if found is None:
            found = self.members[key] = Membership(membership_id, name)
        return found

    def text(self, value: str) -> str:
        return self.strings.setdefault(value, value)


def parse_booking(value: object, what: str = "booking", shared: _Shared | None = None) -> Booking:
    obj = _obj(value, what)
    one = shared or _Shared()
    resource = _obj(obj.get("resource"), f"{what}.resource")
    member = obj.get("membership")
    membership = None
    if member is not None:
        m = _obj(member, f"{what}.membership")
        name = m.get("name")
        membership = one.member(
            _id(m.get("id"), f"{what}.membership.id"), name if isinstance(name, str) else ""
        )
    event = obj.get("event")
    start = parse_response_time(obj.get("from"), f"{what}.from")
    end = parse_response_time(obj.get("to"), f"{what}.to")
    if end < start:
        raise MalformedResponse(f"{what}: ends before it starts")
    title = obj.get("title")
    return Booking(
        id=_id(obj.get("id"), f"{what}.id"),
        resource_id=one.text(_id(resource.get("id"), f"{what}.resource.id")),
        start=start,
        end=end,
        membership=membership,
        units=max(1, _int(obj.get("units"), f"{what}.units", 1) or 1),
        event_id=_id(_obj(event, f"{what}.event").get("id"), f"{what}.event.id")
        if event is not None
        else None,
        title=one.text(title if isinstance(title, str) else ""),
    )


def parse_bookings(value: object, what: str) -> list[Booking]:
    if not isinstance(value, list):
        raise MalformedResponse(f"{what}: expected a list, got {type(value).__name__}")
    shared = _Shared()
    return [parse_booking(item, f"{what}[{i}]", shared) for i, item in enumerate(value)]


# --- the calls ------------------------------------------------------------------------


async def get_resource(
    client: CobotClient,
    resource_id: str,
    *,
    priority: Priority = Priority.SYNC,
    deadline: float | None = None,
) -> Resource:
    """``GET /api/resources/:id`` (scope read_resources). NotFound for a wrong id."""
    data = await client._request(
        ENDPOINTS["get_resource"], {"id": resource_id}, priority=priority, deadline=deadline
    )
    return parse_resource(data)


async def list_resource_bookings(
    client: CobotClient,
    resource_id: str,
    start: datetime,
    end: datetime,
    *,
    priority: Priority = Priority.SYNC,
    deadline: float | None = None,
) -> list[Booking]:
    """``GET /api/resources/:id/bookings?from=&to=`` (scope read_bookings): every booking
    of the resource overlapping ``[start, end]``."""
    data = await client._request(
        ENDPOINTS["list_resource_bookings"],
        {"id": resource_id},
        params={"from": format_request_time(start), "to": format_request_time(end)},
        priority=priority,
        deadline=deadline,
    )
    # A busy room's three days are hundreds of bookings (~35 ms of parsing here, several
    # times that on a Pi): in a thread, so the loop keeps serving taps meanwhile.
    return await asyncio.to_thread(parse_bookings, data, f"resource {resource_id} bookings")


async def _write(
    client: CobotClient,
    endpoint: Endpoint,
    values: Mapping[str, str],
    body: Mapping[str, Any] | None,
    *,
    deadline: float | None,
    expect: Sequence[int],
) -> Any:
    """A booking write: its own 10-rpm slot, then the request, both within ``deadline``."""
    limiter = client.limiter
    if limiter is None:
        raise ValueError("booking writes need a client with the shared rate limiter")
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(deadline):
            await limiter.acquire(Group.BOOKING_WRITES, Priority.LIVE)
    except TimeoutError:
        raise NoSlot(
            f"{endpoint.method} {endpoint.template}: no booking-write slot within {deadline}s"
        ) from None
    left = None if deadline is None else max(0.05, deadline - (loop.time() - started))
    try:
        return await client._request(
            endpoint,
            values,
            json_body=body,
            priority=Priority.LIVE,
            deadline=left,
            expect=tuple(expect),
        )
    except RateLimited as exc:
        limiter.block(Group.BOOKING_WRITES, exc.retry_after)
        raise


async def create_booking(
    client: CobotClient,
    resource_id: str,
    membership_id: str,
    start: datetime,
    end: datetime,
    *,
    title: str,
    deadline: float | None = None,
) -> Booking:
    """``POST /api/resources/:id/bookings`` as space admin for ``membership_id`` with
    ``validate_times_for_admin``: Cobot applies the resource's booking times, durations
    and price as for the member. Refused (422) carries Cobot's reason."""
    body = {
        "from": format_request_time(start),
        "to": format_request_time(end),
        "title": title,
        "membership_id": membership_id,
        "units": 1,
        "validate_times_for_admin": True,
    }
    data = await _write(
        client,
        ENDPOINTS["create_booking"],
        {"id": resource_id},
        body,
        deadline=deadline,
        expect=(201,),
    )
    return parse_booking(data, "created booking")


async def end_booking(
    client: CobotClient, booking_id: str, end: datetime, *, deadline: float | None = None
) -> Booking:
    """``PUT /api/bookings/:id`` with ``to`` only (the other fields stay). The page's
    example URL lacks ``/api``; its heading has it, which we follow."""
    data = await _write(
        client,
        ENDPOINTS["end_booking"],
        {"id": booking_id},
        {"to": format_request_time(end)},
        deadline=deadline,
        expect=(200,),
    )
    return parse_booking(data, "updated booking")


async def delete_booking(
    client: CobotClient, booking_id: str, *, deadline: float | None = None
) -> None:
    """``DELETE /api/bookings/:id``: 204. A 404 (``NotFound``) means it is gone already;
    a 409 (``Refused``) means it belongs to an event (cobot-bookings.txt)."""
    await _write(
        client,
        ENDPOINTS["delete_booking"],
        {"id": booking_id},
        None,
        deadline=deadline,
        expect=(204,),
    )
