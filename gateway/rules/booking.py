"""``access = "booking"``: a meeting room's door opens for the member who booked it.

The door opens when the member behind the card (token cache) holds a booking of the
door's resource whose ``[from - grace_before, to + grace_after]`` contains the tap's
time, edges included to the second. A booking without a membership (an admin blocking
the room) admits nobody; an event booking admits its member like any other; a resource
with several ``units`` admits everyone holding a booking now.

The bookings come from the snapshot (gateway/bookings), in memory: a found booking needs
no API call (so a booking deleted at Cobot keeps opening until the next refresh). Online,
a tap that finds none looks at Cobot live once (the room's bookings around now, within
the decision deadline, at most once per room every ``LOOK_INTERVAL`` seconds), so a
booking made on a phone a minute ago opens the door at once (a card registered since the
last token sync is likewise asked about once). "Offline" (the breaker is
open, or the snapshot is older than ``[bookings] max_age`` because refreshes fail) the
snapshot alone decides: the outcome is ``opened-offline`` (the door's offline signal)
and walk-up booking stops. A snapshot that does not reach now (none fetched yet, or last
fetched days ago) admits nobody, and says so; so does a tap whose time cannot be trusted
(the clock never synchronised, neither by NTP nor by an API answer).

Walk-up (``walk_up_minutes > 0``, online only): a member without a booking who taps at a
free room books it from the next whole minute (the request format has no seconds, and a
booking may not start in the past) for that long, as space admin on their behalf with
``validate_times_for_admin``, so Cobot applies the room's booking times, durations and
price; 201 opens, 422 stays shut with Cobot's reason. Their tap inside that booking, at
least ``WALK_UP_MIN_SECONDS`` after it began (a double tap must not undo it), ends it now
(``PUT`` with ``to``) and opens the door to let them out; a booking made any other way is
never ended by a tap.

With ``check_in = true`` an admitted member is also checked in (``RecordKind.CHECK_IN``
through the record backends), unless already checked in today.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from gateway.attendance import Attendance, end_of_local_day
from gateway.bookings.snapshot import BookingSnapshot, RoomSnapshot
from gateway.breaker import Breaker
from gateway.cache import TokenCache
from gateway.cobot.bookings import Booking, create_booking, end_booking, list_resource_bookings
from gateway.cobot.client import CobotClient
from gateway.cobot.errors import ApiError, NoSlot, Refused, Unavailable
from gateway.cobot.ratelimit import Priority
from gateway.errors import StorageError
from gateway.model import ClockQuality, Direction, Membership, Outcome, RecordKind, Tap
from gateway.rules.base import Verdict

WALK_UP_DEADLINE = 3.0  # seconds a person waits for Cobot to book the room
WALK_UP_MIN_SECONDS = 60.0  # a tap this soon after a walk-up began does not end it
WALK_UP_TITLE = "Walk-up (door)"
LOOK_DEADLINE = 1.5  # seconds a person waits for a live look at the room's bookings
LOOK_INTERVAL = 10.0  # seconds between live looks at one room (the 60/min budget)


@dataclass(frozen=True, slots=True)
class RoomDoor:
    """A booking door's settings (the ``[[doors]]`` keys of the same names)."""

    door: str
    resource_id: str
    grace_before: float = 600.0
    grace_after: float = 300.0
    check_in: bool = False
    walk_up_minutes: int = 0


def hhmm(moment: datetime) -> str:
    """A time as people at the door read it: the gateway's local ``HH:MM``."""
    return moment.astimezone().strftime("%H:%M")


def ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class BookingRule:
    def __init__(
        self,
        room: RoomDoor,
        cache: TokenCache,
        snapshot: BookingSnapshot,
        attendance: Attendance,
        client: CobotClient,
        breaker: Breaker,
        *,
        max_age: float,
        deadline: float = WALK_UP_DEADLINE,
        look_deadline: float = LOOK_DEADLINE,
        look_interval: float = LOOK_INTERVAL,
        refresh_soon: Callable[[], None] = lambda: None,
        on_walk_up: Callable[[Tap, Booking], None] | None = None,
    ) -> None:
        self.room = room
        self._cache = cache
        self._snapshot = snapshot
        self._attendance = attendance
        self._client = client
        self._breaker = breaker
        self._max_age = max_age
        self._deadline = deadline
        self._look_deadline = look_deadline
        self._look_interval = look_interval
        self._last_look = float("-inf")
        self._last_token_look = float("-inf")
        self._refresh_soon = refresh_soon
        self._on_walk_up = on_walk_up

    async def judge(self, tap: Tap) -> Verdict:
        member = self._cache.lookup(tap.token) or await self._new_token(tap.token)
        if member is None:
            return Verdict(Outcome.UNKNOWN_TOKEN, None, "token not known")
        if tap.clock in (ClockQuality.UNSYNCED, ClockQuality.NOW):
            return Verdict(
                Outcome.DENIED_OFFLINE,
                member,
                "the gateway's clock is not synchronised yet: bookings cannot be checked",
            )
        snap = self._snapshot.room(self.room.resource_id)
        at = tap.at
        if snap is None:
            return Verdict(
                Outcome.DENIED_OFFLINE,
                member,
                f"no bookings of door {self.room.door!r} fetched from Cobot yet: "
                "the door stays shut until they are",
            )
        if not snap.covers(at):
            return Verdict(
                Outcome.DENIED_OFFLINE,
                member,
                f"bookings of {snap.name} were last fetched {ago(snap.age(at))} ago and do "
                "not reach now: the door stays shut until Cobot answers",
            )
        offline = self._offline(snap, at)
        booking = self._holding(snap, member, at)
        if booking is None and offline is None and self._may_look():
            looked = await self._look(snap, at)
            if looked is not None:
                snap = looked
                booking = self._holding(snap, member, at)
        if booking is not None:
            if self._ends_walk_up(booking, at) and offline is None:
                return await self._end_walk_up(snap, booking, member, at)
            entering = tap.direction is Direction.IN  # an exit reader checks nobody in
            return self._admit(Outcome.OPENED_BOOKING, member, at, offline, entering=entering)
        if self.room.walk_up_minutes > 0:
            return await self._walk_up(tap, snap, member, offline)
        return Verdict(Outcome.NO_BOOKING, member, self._why_not(snap, member, at))

    def _holding(self, snap: RoomSnapshot, member: Membership, at: datetime) -> Booking | None:
        booking = snap.holding(member.id, at, self.room.grace_before, self.room.grace_after)
        if booking is None and self.room.walk_up_minutes > 0:
            # Their walk-up starts at the next whole minute: it holds from the tap on.
            early = snap.holding(member.id, at, WALK_UP_MIN_SECONDS, self.room.grace_after)
            if early is not None and self._snapshot.is_walk_up(early.id):
                booking = early
        return booking

    # --- live looks: a card or a booking newer than the last sync or refresh -----------

    async def _new_token(self, token: str) -> Membership | None:
        """A card registered since the last token sync: asked once (``GET
        /api/check_in_tokens/:token``, within the decision deadline, at most once per
        room every ``look_interval``), and kept in the cache when Cobot knows it."""
        if self._breaker.is_open:
            return None
        now = time.monotonic()
        if now - self._last_token_look < self._look_interval:
            return None
        self._last_token_look = now
        try:
            record = await self._client.get_token(
                token, priority=Priority.LIVE, deadline=self._look_deadline
            )
        except Unavailable as exc:
            self._breaker.record_failure(str(exc))
            return None
        except ApiError:
            return None
        if record is None:
            return None
        # If it cannot be stored, this tap still knows the member; the next sync stores it.
        with contextlib.suppress(StorageError):
            await self._cache.add(record.token, record.membership)
        return record.membership

    def _may_look(self) -> bool:
        """At most one live look per room every ``look_interval`` seconds: a booking
        made since the last refresh is found at once, and nobody tapping again and again
        at a room can spend the general group's 60 requests a minute."""
        now = time.monotonic()
        if now - self._last_look < self._look_interval:
            return False
        self._last_look = now
        return True

    async def _look(self, snap: RoomSnapshot, at: datetime) -> RoomSnapshot | None:
        """The room's bookings around now, asked live (a booking made a minute ago on the
        member's phone); None when Cobot does not answer in time (the snapshot decides)."""
        reach = max(self.room.grace_before, self.room.walk_up_minutes * 60.0)
        # The query has whole minutes: round outwards, and merge over what was asked.
        start = (at - timedelta(seconds=self.room.grace_after)).replace(second=0, microsecond=0)
        end = _next_minute(at + timedelta(seconds=reach))
        try:
            found = await list_resource_bookings(
                self._client,
                self.room.resource_id,
                start,
                end,
                priority=Priority.LIVE,
                deadline=self._look_deadline,
            )
        except Unavailable as exc:
            self._breaker.record_failure(str(exc))
            return None
        except ApiError:
            return None
        self._breaker.record_success()
        return await self._snapshot.merge(self.room.resource_id, start, end, found)

    # --- admitting ------------------------------------------------------------------

    def _offline(self, snap: RoomSnapshot, at: datetime) -> str | None:
        """Why this decision counts as offline, or None."""
        if self._breaker.is_open:
            return f"Cobot unreachable ({self._breaker.last_error or 'no answer'})"
        age = snap.age(at)
        if age > self._max_age:
            return f"bookings snapshot {ago(age)} old (limit {ago(self._max_age)})"
        return None

    def _admit(
        self,
        outcome: Outcome,
        member: Membership,
        at: datetime,
        offline: str | None,
        *,
        entering: bool = True,
    ) -> Verdict:
        if offline is not None and outcome is Outcome.OPENED_BOOKING:
            outcome = Outcome.OPENED_OFFLINE
        record = None
        until = None
        if entering and self.room.check_in and self._attendance.until(member.id, at) is None:
            record, until = RecordKind.CHECK_IN, end_of_local_day(at)
        return Verdict(outcome, member, offline, record=record, until=until, live=offline is None)

    # --- walk-up --------------------------------------------------------------------

    def _ends_walk_up(self, booking: Booking, at: datetime) -> bool:
        return (
            self.room.walk_up_minutes > 0
            and self._snapshot.is_walk_up(booking.id)
            and booking.start + timedelta(seconds=WALK_UP_MIN_SECONDS) <= at < booking.end
        )

    async def _walk_up(
        self, tap: Tap, snap: RoomSnapshot, member: Membership, offline: str | None
    ) -> Verdict:
        at = tap.at
        start = _next_minute(at)
        end = start + timedelta(minutes=self.room.walk_up_minutes)
        if snap.units_free(at, end) <= 0:
            why = self._why_not(snap, member, at)
            upcoming = snap.next_of(None, at)
            if not snap.current(at) and upcoming is not None:
                why += (
                    f"; a {self.room.walk_up_minutes}-minute walk-up booking would overlap "
                    f"the booking at {hhmm(upcoming.start)}"
                )
            return Verdict(Outcome.NO_BOOKING, member, why)
        if offline is not None:
            return Verdict(
                Outcome.DENIED_OFFLINE,
                member,
                f"no booking of {snap.name} now, and walk-up booking needs Cobot: {offline}",
            )
        started = time.monotonic()
        try:
            booking = await create_booking(
                self._client,
                self.room.resource_id,
                member.id,
                start,
                end,
                title=WALK_UP_TITLE,
                deadline=self._deadline,
            )
        except Refused as exc:
            return Verdict(
                Outcome.REFUSED,
                member,
                f"{snap.name} cannot be booked now: {exc.reason}",
                preview_ms=_ms(started),
            )
        except NoSlot:
            return Verdict(
                Outcome.REFUSED,
                member,
                "too many bookings made in the last minute (Cobot allows 10): try again shortly",
                preview_ms=_ms(started),
            )
        except ApiError as exc:
            if isinstance(exc, Unavailable):
                self._breaker.record_failure(str(exc))
            # The booking may have been made all the same: look again soon.
            self._refresh_soon()
            return Verdict(
                Outcome.DENIED_OFFLINE,
                member,
                f"could not book {snap.name}: {exc}",
                preview_ms=_ms(started),
            )
        self._breaker.record_success()
        if booking.membership is None:  # Cobot's answer names no member: it is ours
            booking = replace(booking, membership=member)
        await self._snapshot.booked(booking, walk_up=True)
        if self._on_walk_up is not None:  # taken back if the door then fails (bookings/undo)
            self._on_walk_up(tap, booking)
        verdict = self._admit(Outcome.OPENED_WALK_UP, member, at, None)
        reason = f"booked {snap.name} for you until {hhmm(booking.end)}"
        return Verdict(
            verdict.outcome,
            member,
            reason,
            record=verdict.record,
            until=verdict.until,
            preview_ms=_ms(started),
        )

    async def _end_walk_up(
        self, snap: RoomSnapshot, booking: Booking, member: Membership, at: datetime
    ) -> Verdict:
        started = time.monotonic()
        end = at.replace(second=0, microsecond=0)
        try:
            changed = await end_booking(self._client, booking.id, end, deadline=self._deadline)
        except ApiError as exc:
            if isinstance(exc, Unavailable):
                self._breaker.record_failure(str(exc))
            # Still their booking: the door opens, the room stays booked.
            return Verdict(
                Outcome.OPENED_BOOKING,
                member,
                f"could not end your walk-up booking of {snap.name}: {exc}",
                preview_ms=_ms(started),
            )
        self._breaker.record_success()
        await self._snapshot.booked(replace(booking, end=changed.end), walk_up=True)
        return Verdict(
            Outcome.WALK_UP_ENDED,
            member,
            f"your walk-up booking of {snap.name} ended at {hhmm(changed.end)}",
            preview_ms=_ms(started),
        )

    # --- refusals in plain words ------------------------------------------------------

    def _why_not(self, snap: RoomSnapshot, member: Membership, at: datetime) -> str:
        text = f"no booking of {snap.name} now"
        running = snap.current(at)
        if running and sum(b.units for b in running) >= snap.units:
            holder = running[-1]
            if holder.membership is None:
                text = f"{snap.name} is blocked until {hhmm(holder.end)}"
            else:
                text = f"{snap.name} is booked by someone else until {hhmm(holder.end)}"
        mine = snap.next_of(member.id, at)
        if mine is not None:
            opens = mine.start - timedelta(seconds=self.room.grace_before)
            day = "" if mine.start.astimezone().date() == at.astimezone().date() else " tomorrow"
            return f"{text}; next: yours at {hhmm(mine.start)}{day} (door opens {hhmm(opens)})"
        if self.room.walk_up_minutes > 0 and running:
            return f"{text}; walk-up booking needs the room free"
        return text


def _next_minute(at: datetime) -> datetime:
    """``at`` itself on a whole minute, else the next whole minute."""
    floor = at.replace(second=0, microsecond=0)
    return floor if floor == at else floor + timedelta(minutes=1)


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000
