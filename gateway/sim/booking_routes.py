"""The simulated resources and bookings endpoints, declared as data like ``routes.py``,
with the JSON they answer in the pages' shapes (times as ``2012/01/01 12:00:00 +0000``).

Request bodies are JSON (typed: ``units`` a number, ``validate_times_for_admin`` a
boolean, as in the page's examples) or form-encoded ("true"/"false", digits). Times in
queries and bodies must be the request format ``2012-04-12 12:00 +0000``: a malformed
query time is 400 (the request is malformed, as in routes.py), a malformed body time
422 (the booking is invalid, as the page says for invalid bookings).

Booking writes (POST, PUT, DELETE) share one rate-limit window of 10 per minute per
user: the page gives "10 rpm" on POST only; the strict reading applies it to every write.
Reads keep the general 60 per endpoint.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from gateway.sim.bookings import BookingChange, SimBooking, SimResource
from gateway.sim.model import BadRequest, Invalid, Role, Scope
from gateway.sim.ratelimit import BOOKING_WRITES
from gateway.sim.routes import Call, Route, UnsupportedMediaType, body_bytes, ok
from gateway.sim.timefmt import format_time

_REQUEST_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} [+-]\d{4}")
_STRINGS = ("from", "to", "title", "membership_id", "comments", "resource_id")


def request_time(value: str) -> datetime | None:
    if not _REQUEST_TIME.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M %z").astimezone(UTC)
    except ValueError:
        return None


def _query_time(call: Call, key: str) -> datetime:
    value = call.request.query.get(key)
    if value is None:
        raise BadRequest(f"{key} is required")
    parsed = request_time(value)
    if parsed is None:
        raise BadRequest(
            f"{key}: expected a time like '2012-04-12 12:00 +0000', got {value[:40]!r}"
        )
    return parsed


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await body_bytes(request)
    if not raw:
        return {}
    if request.content_type == "application/json":
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("malformed JSON body") from None
        if not isinstance(data, dict):
            raise BadRequest("the JSON body must be an object")
        return data
    if request.content_type == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=True))
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("malformed form body") from None
    raise UnsupportedMediaType(request.content_type)


def _change(data: dict[str, Any]) -> BookingChange:
    for key in _STRINGS:
        if key in data and not isinstance(data[key], str):
            raise BadRequest(f"{key} must be a string")
    times: dict[str, datetime | None] = {}
    errors: dict[str, str] = {}
    for key in ("from", "to"):
        raw = data.get(key)
        times[key] = None
        if raw:
            times[key] = request_time(raw)
            if times[key] is None:
                errors[key] = "is not a valid time (expected '2012-04-12 12:00 +0000')"
    units = data.get("units")
    if isinstance(units, str) and units.isdigit():
        units = int(units)
    if units is not None and (isinstance(units, bool) or not isinstance(units, int)):
        errors["units"] = "is not a number"
    flag = data.get("validate_times_for_admin", False)
    if isinstance(flag, str) and flag in ("true", "false"):
        flag = flag == "true"
    if not isinstance(flag, bool):
        raise BadRequest("validate_times_for_admin must be true or false")
    if errors:
        raise Invalid(errors)
    return BookingChange(
        start=times["from"],
        end=times["to"],
        membership_id=data.get("membership_id") or None,
        title=data.get("title"),
        comments=data.get("comments"),
        units=units,
        resource_id=data.get("resource_id") or None,
        validate_times_for_admin=flag,
    )


# --- the JSON ---------------------------------------------------------------------------


def resource_json(call: Call, resource: SimResource) -> dict[str, Any]:
    origin = str(call.request.url.origin())
    can_book = call.access.role is Role.ADMIN or resource.members_can_book
    return {
        "id": resource.id,
        "name": resource.name,
        "price_per_hour": f"{resource.price_per_hour:.1f}",
        "tax_rate": "20.0",
        "hidden": False,
        "capacity": resource.capacity,
        "units": resource.units,  # ours: see gateway/sim/bookings.py
        "currency": "EUR",
        "description": "",
        "cancellation_period": 0,
        "can_book": can_book,
        "color": "#FF0000",
        "photo": f"{origin}/path/to/default_photo_size.jpg",
        "min_booking_duration": resource.min_booking_duration,
        "max_booking_duration": resource.max_booking_duration or None,
        "booking_url": f"{origin}/api/resources/{resource.id}/bookings",
        "booking_times": [
            {"from": frm, "to": to, **({"weekdays": days} if days else {})}
            for frm, to, days in resource.booking_times
        ],
    }


def booking_json(call: Call, booking: SimBooking) -> dict[str, Any]:
    rooms = call.space.rooms
    resource = rooms.resource(booking.resource_id)
    hours = (booking.end - booking.start).total_seconds() / 3600
    body: dict[str, Any] = {
        "id": booking.id,
        "from": format_time(booking.start),
        "to": format_time(booking.end),
        "tax_rate": "20.0",
        "title": booking.title,
        "resource": {"name": resource.name, "id": resource.id},
        "price": round(resource.price_per_hour * hours * booking.units, 2),
        "has_custom_price": False,
        "currency": "EUR",
        "accounting_code": None,
        "url": f"{call.request.url.origin()}/api/bookings/{booking.id}",
        "can_change": booking.event_id is None,
        "units": booking.units,
        "created_at": format_time(booking.created_at),
        "updated_at": format_time(booking.updated_at),
    }
    own = booking.membership_id is not None and booking.membership_id == call.access.membership_id
    if booking.membership_id is not None and (call.access.role is Role.ADMIN or own):
        member = call.space.members[booking.membership_id]
        body["membership"] = {"id": member.id, "name": member.name}
    if call.access.role is Role.ADMIN or own:
        body["comments"] = booking.comments  # "members can only see their own comments"
    if booking.event_id is not None:
        body["event"] = {"id": booking.event_id}
    return body


# --- handlers ---------------------------------------------------------------------------


async def get_resources(call: Call) -> web.Response:
    raw = call.request.query.get("ids")
    ids = [i for i in raw.split(",") if i] if raw is not None else None
    return ok([resource_json(call, r) for r in call.space.rooms.list_resources(ids)])


async def get_resource(call: Call) -> web.Response:
    return ok(resource_json(call, call.space.rooms.resource(call.request.match_info["id"])))


def _visible(call: Call, bookings: list[SimBooking]) -> list[SimBooking]:
    limit = call.request.query.get("limit")
    if limit is not None:
        if not limit.isdigit():
            raise BadRequest("limit must be a whole number")
        bookings = bookings[: int(limit)]
    return bookings


async def get_bookings(call: Call) -> web.Response:
    start, end = _query_time(call, "from"), _query_time(call, "to")
    found = _visible(call, call.space.rooms.overlapping(start, end))
    return ok([booking_json(call, b) for b in found])


async def get_resource_bookings(call: Call) -> web.Response:
    start, end = _query_time(call, "from"), _query_time(call, "to")
    rid = call.request.match_info["id"]
    found = call.space.rooms.overlapping(start, end, resource_id=rid)
    return ok([booking_json(call, b) for b in found])


async def get_booking(call: Call) -> web.Response:
    return ok(booking_json(call, call.space.rooms.booking(call.request.match_info["id"])))


async def post_booking(call: Call) -> web.Response:
    change = _change(await _body(call.request))
    made = call.space.rooms.create(call.access, call.request.match_info["id"], change)
    return ok(booking_json(call, made), 201)


async def put_booking(call: Call) -> web.Response:
    change = _change(await _body(call.request))
    changed = call.space.rooms.update(call.access, call.request.match_info["id"], change)
    return ok(booking_json(call, changed))


async def delete_booking(call: Call) -> web.Response:
    call.space.rooms.delete(call.access, call.request.match_info["id"])
    return web.Response(status=204)


def _r(method: str, template: str, handler: Any, scope: Scope, *, write: bool = False) -> Route:
    return Route(method, template, handler, scope, False, BOOKING_WRITES if write else None)


# Members and admins alike may call these (the pages: "space member or admin").
BOOKING_ROUTES: tuple[Route, ...] = (
    _r("GET", "/api/resources", get_resources, Scope.READ_RESOURCES),
    _r("GET", "/api/resources/:id", get_resource, Scope.READ_RESOURCES),
    _r("GET", "/api/bookings", get_bookings, Scope.READ_BOOKINGS),
    _r("GET", "/api/resources/:id/bookings", get_resource_bookings, Scope.READ_BOOKINGS),
    _r("GET", "/api/bookings/:id", get_booking, Scope.READ_BOOKINGS),
    _r("POST", "/api/resources/:id/bookings", post_booking, Scope.WRITE_BOOKINGS, write=True),
    _r("PUT", "/api/bookings/:id", put_booking, Scope.WRITE_BOOKINGS, write=True),
    _r("DELETE", "/api/bookings/:id", delete_booking, Scope.WRITE_BOOKINGS, write=True),
)
