"""The simulated space's resources and bookings (cobot-resources.txt, cobot-bookings.txt).
Pure, like ``space.py``: the routes in ``booking_routes.py`` translate HTTP into these.

Readings of the pages where they are vague (the strict one each time):

- "Overlapping the given time period": a booking overlaps ``[from, to]`` when it starts
  before ``to`` and ends after ``from``; one that only touches an end does not.
- A resource's ``units`` (how many bookings may overlap) is not in the page's JSON but
  in its words ("if a resource has more than one unit"): we send it, 1 by default. Every
  booking, an admin's too, must fit into the free units (422 otherwise): Cobot's admins
  may book "any time", not any number of units.
- ``validate_times_for_admin`` (or a member booking) checks ``booking_times``, min/max
  ``booking_duration`` and "cannot be in the past": ``from`` before this very second is
  the past, even within the current minute (the request format has no seconds, so a
  booking "from now" must name the next minute). ``booking_times`` are the space's local
  hours; the whole booking must lie in one entry on its start's weekday.
- ``can_book`` is per caller: always true for admins; for members the resource's
  ``members_can_book``. A member booking one they cannot book gets 403, as the page says.
- The resource bookings list includes ``membership`` ({id, name}) for admins on every
  booking that has one and for members on their own only; an admin's block has none.
  (The page's example, an event booking, shows none.)
- Members may change or delete only their own bookings and only before they start; an
  event's booking cannot be changed or deleted (409), not even by an admin.
- Times in requests must be exactly ``2012-04-12 12:00 +0000`` (two-digit fields, an
  offset): the PUT example's ``2012-01-1`` is read as a typo, and the response format is
  not accepted in requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo

from gateway.sim.model import (
    Forbidden,
    Invalid,
    Missing,
    Role,
    SimAccessToken,
    SimMember,
    SimRefusal,
)

ALREADY_BOOKED = {"base": "Resource is already booked at that time."}
IN_THE_PAST = {"from": "can't be in the past"}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Conflict(SimRefusal):
    """409: "the booking has been made by an event and can't be changed"."""

    status = 409

    def __init__(self, message: str) -> None:
        super().__init__({"error": message})


@dataclass(slots=True, kw_only=True)
class SimResource:
    id: str
    name: str
    units: int = 1
    members_can_book: bool = True
    min_booking_duration: int = 0  # minutes
    max_booking_duration: int = 0  # minutes; 0: no maximum
    # (from "HH:MM", to "HH:MM", ISO weekdays; empty: every day); empty: any time
    booking_times: list[tuple[str, str, list[int]]] = field(default_factory=list)
    price_per_hour: float = 10.0
    capacity: int = 1


@dataclass(slots=True, kw_only=True)
class SimBooking:
    id: str
    resource_id: str
    start: datetime  # UTC
    end: datetime  # UTC
    membership_id: str | None = None  # None: an admin's block
    units: int = 1
    title: str = ""
    comments: str = ""
    event_id: str | None = None
    created_at: datetime
    updated_at: datetime

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and self.end > start


@dataclass(frozen=True, slots=True, kw_only=True)
class BookingChange:
    """A create's or update's parameters, already parsed (None: not given)."""

    start: datetime | None = None
    end: datetime | None = None
    membership_id: str | None = None
    title: str | None = None
    comments: str | None = None
    units: int | None = None
    resource_id: str | None = None
    validate_times_for_admin: bool = False


class SimRooms:
    """Resources and bookings, in creation order."""

    def __init__(
        self,
        *,
        now: Callable[[], datetime],
        zone: Callable[[], tzinfo],
        members: dict[str, SimMember],
        new_id: Callable[[], str],
    ) -> None:
        self._now = now
        self._zone = zone
        self._members = members
        self._new_id = new_id
        self.resources: dict[str, SimResource] = {}
        self.bookings: dict[str, SimBooking] = {}
        self.writes = 0  # bookings created, changed or deleted through the API

    # --- setting the space up (tests, seeds) --------------------------------------------

    def add_resource(self, name: str, *, id: str | None = None, **kw: object) -> SimResource:
        resource = SimResource(id=id or self._new_id(), name=name, **kw)  # type: ignore[arg-type]
        self.resources[resource.id] = resource
        return resource

    def add_booking(
        self,
        resource_id: str,
        start: datetime,
        end: datetime,
        *,
        membership_id: str | None = None,
        units: int = 1,
        title: str = "",
        event_id: str | None = None,
        id: str | None = None,
    ) -> SimBooking:
        """Set-up helper: no validation beyond the resource existing."""
        self._resource(resource_id)
        now = self._now()
        booking = SimBooking(
            id=id or self._new_id(),
            resource_id=resource_id,
            start=start,
            end=end,
            membership_id=membership_id,
            units=units,
            title=title,
            event_id=event_id,
            created_at=now,
            updated_at=now,
        )
        self.bookings[booking.id] = booking
        return booking

    def remove_booking(self, booking_id: str) -> None:
        """Set-up helper: as if deleted on Cobot's website."""
        del self.bookings[booking_id]

    # --- reading --------------------------------------------------------------------

    def list_resources(self, ids: list[str] | None) -> list[SimResource]:
        return [r for r in self.resources.values() if ids is None or r.id in ids]

    def resource(self, resource_id: str) -> SimResource:
        return self._resource(resource_id)

    def overlapping(
        self, start: datetime, end: datetime, *, resource_id: str | None = None
    ) -> list[SimBooking]:
        if resource_id is not None:
            self._resource(resource_id)
        return sorted(
            (
                b
                for b in self.bookings.values()
                if b.overlaps(start, end) and resource_id in (None, b.resource_id)
            ),
            key=lambda b: (b.start, b.id),
        )

    def booking(self, booking_id: str) -> SimBooking:
        found = self.bookings.get(booking_id)
        if found is None:
            raise Missing("booking not found")
        return found

    # --- writing --------------------------------------------------------------------

    def create(self, actor: SimAccessToken, resource_id: str, change: BookingChange) -> SimBooking:
        resource = self._resource(resource_id)
        if actor.role is Role.MEMBER:
            if not resource.members_can_book:
                raise Forbidden("this resource can only be booked by admins")
            if change.membership_id not in (None, actor.membership_id):
                raise Forbidden("members can only book for themselves")
            membership_id = actor.membership_id
        else:
            membership_id = change.membership_id
        errors: dict[str, str] = {}
        if change.start is None:
            errors["from"] = "can't be blank"
        if change.end is None:
            errors["to"] = "can't be blank"
        if membership_id is not None and membership_id not in self._members:
            errors["membership_id"] = "membership not found"
        if errors:
            raise Invalid(errors)
        assert change.start is not None and change.end is not None
        now = self._now()
        booking = SimBooking(
            id=self._new_id(),
            resource_id=resource_id,
            start=change.start,
            end=change.end,
            membership_id=membership_id,
            units=change.units or 1,
            title=change.title or "",
            comments=change.comments or "",
            created_at=now,
            updated_at=now,
        )
        self._validate(actor, resource, booking, change.validate_times_for_admin)
        self.bookings[booking.id] = booking
        self.writes += 1
        return booking

    def update(self, actor: SimAccessToken, booking_id: str, change: BookingChange) -> SimBooking:
        old = self._changeable(actor, booking_id)
        if actor.role is Role.MEMBER and change.membership_id not in (None, old.membership_id):
            raise Forbidden("members can only book for themselves")
        if change.membership_id is not None and change.membership_id not in self._members:
            raise Invalid({"membership_id": "membership not found"})
        resource = self._resource(change.resource_id or old.resource_id)
        new = SimBooking(
            id=old.id,
            resource_id=resource.id,
            start=change.start or old.start,
            end=change.end or old.end,
            membership_id=change.membership_id or old.membership_id,
            units=change.units or old.units,
            title=old.title if change.title is None else change.title,
            comments=old.comments if change.comments is None else change.comments,
            event_id=old.event_id,
            created_at=old.created_at,
            updated_at=self._now(),
        )
        self._validate(actor, resource, new, change.validate_times_for_admin)
        self.bookings[old.id] = new
        self.writes += 1
        return new

    def delete(self, actor: SimAccessToken, booking_id: str) -> None:
        self._changeable(actor, booking_id)
        del self.bookings[booking_id]
        self.writes += 1

    # --- rules ------------------------------------------------------------------------

    def _resource(self, resource_id: str) -> SimResource:
        found = self.resources.get(resource_id)
        if found is None:
            raise Missing("resource not found")
        return found

    def _changeable(self, actor: SimAccessToken, booking_id: str) -> SimBooking:
        booking = self.booking(booking_id)
        if booking.event_id is not None:
            raise Conflict("this booking belongs to an event and cannot be changed here")
        if actor.role is Role.MEMBER:
            if booking.membership_id != actor.membership_id:
                raise Forbidden("members can only change their own bookings")
            if booking.start <= self._now():
                raise Forbidden("members can only change bookings in the future")
        return booking

    def _validate(
        self, actor: SimAccessToken, resource: SimResource, booking: SimBooking, strict: bool
    ) -> None:
        if booking.end <= booking.start:
            raise Invalid({"to": "must be after from"})
        if not 1 <= booking.units <= resource.units:
            raise Invalid({"units": f"must be between 1 and {resource.units}"})
        if actor.role is Role.MEMBER or strict:
            self._validate_times(resource, booking)
        busy = sum(
            b.units
            for b in self.overlapping(booking.start, booking.end, resource_id=resource.id)
            if b.id != booking.id
        )
        if busy + booking.units > resource.units:
            raise Invalid(ALREADY_BOOKED)

    def _validate_times(self, resource: SimResource, booking: SimBooking) -> None:
        if booking.start < self._now():
            raise Invalid(IN_THE_PAST)
        minutes = (booking.end - booking.start) / timedelta(minutes=1)
        if minutes < resource.min_booking_duration:
            raise Invalid(
                {"base": f"Bookings must be at least {resource.min_booking_duration} minutes."}
            )
        if resource.max_booking_duration and minutes > resource.max_booking_duration:
            raise Invalid(
                {"base": f"Bookings can be at most {resource.max_booking_duration} minutes."}
            )
        if resource.booking_times and not self._in_booking_times(resource, booking):
            raise Invalid({"base": f"{resource.name} can only be booked {_describe(resource)}."})

    def _in_booking_times(self, resource: SimResource, booking: SimBooking) -> bool:
        zone = self._zone()
        start, end = booking.start.astimezone(zone), booking.end.astimezone(zone)
        for frm, to, days in resource.booking_times:
            if days and start.isoweekday() not in days:
                continue
            opens = datetime.combine(start.date(), _clock(frm), tzinfo=zone)
            closes = (
                datetime.combine(start.date() + timedelta(days=1), time(0), tzinfo=zone)
                if to == "24:00"
                else datetime.combine(start.date(), _clock(to), tzinfo=zone)
            )
            if opens <= start and end <= closes:
                return True
        return False


def _clock(text: str) -> time:
    return time(int(text[:2]), int(text[3:5]))


def _describe(resource: SimResource) -> str:
    spans = []
    for frm, to, days in resource.booking_times:
        on = ", ".join(_DAYS[d - 1] for d in days) if days else "every day"
        spans.append(f"{on} {frm}-{to}")
    return "; ".join(spans)
