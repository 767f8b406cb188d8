"""The simulated coworking space: its directory (members, accounts, tokens), check-ins,
a movable business clock and the test hooks. Pure: no aiohttp, no I/O; the server
translates HTTP into these calls.

Every operation runs to completion without awaiting, so a test may read and change the
space at any time from the event loop the server runs on.

Readings of the check-in page where it is vague (the strict one each time):

- A member who is already checked in gets the ORIGINAL check-in back with **200**, not
  201: nothing was created, and a client must not count the answer as a new check-in.
- After a check-out the member is no longer checked in: a new ``POST /api/check_ins``
  the same day creates a NEW check-in (and uses another time pass on a pass plan).
- ``POST /api/memberships/:id/work_sessions`` refuses any second check-in for the
  business day of ``valid_from``, checked out or not ("already checked in for that
  day"): see ``ALREADY_CHECKED_IN``.
- A preview registers no token (registering is an effect; a preview "only simulates").
- Guests and admin accounts cannot hold tokens ("not supported for guest accounts"):
  sending one checks them in, registers nothing and returns a warning, as for a token
  owned by someone else.
- A member's own access token may check in only that member and may not register
  tokens: anything else is 403.
- "Check-ins for a given time frame" are those that STARTED in [from, to].

The HTTP-level readings (400 for malformed bodies and missing ``from``/``to``, only
``preview=true`` previews) are in ``routes.py``; the rate limit's in ``ratelimit.py``.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from gateway.sim.bookings import SimRooms
from gateway.sim.clock import BusinessClock
from gateway.sim.directory import Directory
from gateway.sim.faults import Faults
from gateway.sim.model import (
    ALREADY_CHECKED_IN,
    LOGIN_INCORRECT,
    NO_TIME_PASSES,
    NOT_CONFIRMED,
    TOKEN_UNKNOWN,
    WARNING_TOKEN_TAKEN,
    WARNING_TOKEN_UNSUPPORTED,
    BadRequest,
    Forbidden,
    Invalid,
    Missing,
    Plan,
    Role,
    SimAccessToken,
    SimAccount,
    SimCheckIn,
    SimMember,
)
from gateway.sim.ratelimit import SimRateLimiter
from gateway.sim.timefmt import business_day, end_of_business_day


@dataclass(frozen=True, slots=True)
class RequestRecord:
    at: float  # monotonic time of arrival
    method: str
    path: str
    template: str | None  # None for unrouted paths
    status: int | None  # None when the connection was dropped unanswered
    user: str | None  # the access token's label


@dataclass(frozen=True, slots=True)
class CheckInAnswer:
    """A ``POST /api/check_ins`` outcome.

    ``check_in`` is stored when ``saved``; for previews of a new check-in and for
    guests/admins it is an unsaved stand-in carrying the times. ``tracked`` is False for
    guests/admins: the wire form then has no id and no membership.
    """

    status: int
    check_in: SimCheckIn
    saved: bool
    tracked: bool
    warning: str | None = None


class SimSpace(Directory):
    def __init__(
        self,
        *,
        timezone: str | tzinfo = "UTC",
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        seed: int = 0,
        request_log_size: int = 100_000,
    ) -> None:
        super().__init__(seed=seed)
        self.clock = BusinessClock(timezone, clock)
        self.monotonic = monotonic
        self.check_ins: dict[str, SimCheckIn] = {}  # by id, in creation order
        self._member_check_ins: dict[str, list[SimCheckIn]] = {}
        # Test hooks: every request, check-ins created per (membership, business day)
        # (a crash test asserts none lost and none doubled), the faults, the limiter.
        # Bounded: a standalone simulator serving a demo for days must not grow forever.
        self.requests: deque[RequestRecord] = deque(maxlen=request_log_size)
        self.check_in_creations: Counter[tuple[str, date]] = Counter()
        self.guest_check_ins = 0
        self.faults = Faults()
        # Through a lambda: a test that swaps ``space.monotonic`` moves the limiter too.
        self.rate_limit = SimRateLimiter(clock=lambda: self.monotonic())  # noqa: PLW0108
        # Resources and bookings (gateway/sim/bookings.py); ids are numbers, as the docs'.
        self.rooms = SimRooms(
            now=self.now,
            zone=lambda: self.zone,
            members=self.members,
            new_id=lambda: str(self._rng.randrange(10_000_000, 100_000_000)),
        )

    # --- the business clock (see clock.py) ---------------------------------------

    @property
    def zone(self) -> tzinfo:
        return self.clock.zone

    def now(self) -> datetime:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def set_time(self, moment: datetime, *, running: bool = False) -> None:
        self.clock.set_time(moment, running=running)

    def today(self) -> date:
        return self.clock.today()

    # --- check-ins ------------------------------------------------------------------

    def active_check_in(self, membership_id: str) -> SimCheckIn | None:
        now = self.now()
        for check_in in reversed(self._member_check_ins.get(membership_id, ())):
            if check_in.active_at(now):
                return check_in
        return None

    def check_ins_of(self, membership_id: str, day: date | None = None) -> list[SimCheckIn]:
        return [
            c
            for c in self._member_check_ins.get(membership_id, ())
            if day is None or business_day(c.valid_from, self.zone) == day
        ]

    def doubled(self) -> dict[tuple[str, date], int]:
        """(membership, day) pairs with more than one check-in created."""
        return {key: n for key, n in self.check_in_creations.items() if n > 1}

    def check_in(
        self,
        actor: SimAccessToken,
        *,
        login: str | None = None,
        password: str | None = None,
        token: str | None = None,
        preview: bool = False,
    ) -> CheckInAnswer:
        registering = token if login and password is not None and token else None
        if actor.role is Role.MEMBER and registering:
            raise Forbidden("members cannot register tokens")
        if password is not None and login:
            who = self._by_credentials(login, password)
        elif token:
            who = self._by_token(token, TOKEN_UNKNOWN)
        else:
            # "Sending the token as login works, too."
            who = self._by_token(login or "", LOGIN_INCORRECT)
        if isinstance(who, SimAccount):
            if actor.role is Role.MEMBER:
                raise Forbidden("members can only check themselves in")
            return self._account_check_in(registering, preview=preview)
        if actor.role is Role.MEMBER and who.id != actor.membership_id:
            raise Forbidden("members can only check themselves in")
        if not who.confirmed:
            raise Invalid(NOT_CONFIRMED)
        original = self.active_check_in(who.id)
        if original is None and who.plan is Plan.TIME_PASSES and not who.time_passes:
            raise Invalid(NO_TIME_PASSES)
        # Past every refusal: a 422 leaves no trace, not even a registered token.
        warning = self._register_on_check_in(registering, who.id, preview=preview)
        if original is not None:
            return CheckInAnswer(200, original, saved=True, tracked=True, warning=warning)
        now = self.now()
        if preview:
            stand_in = self._unsaved(who.id, now)
            return CheckInAnswer(200, stand_in, saved=False, tracked=True, warning=warning)
        created = self._create(who, now)
        return CheckInAnswer(201, created, saved=True, tracked=True, warning=warning)

    def _register_on_check_in(
        self, token: str | None, membership_id: str, *, preview: bool
    ) -> str | None:
        if token is None:
            return None
        owner = self.tokens.get(token)
        if owner is not None and owner != membership_id:
            return WARNING_TOKEN_TAKEN
        if owner is None and not preview:
            self.tokens[token] = membership_id
        return None

    def _account_check_in(self, registering: str | None, *, preview: bool) -> CheckInAnswer:
        # Cobot does not track guests' and admins' check-ins: nothing is stored, only
        # counted (a preview not even that).
        if not preview:
            self.guest_check_ins += 1
        warning = WARNING_TOKEN_UNSUPPORTED if registering else None
        stand_in = self._unsaved("", self.now())
        status = 200 if preview else 201
        return CheckInAnswer(status, stand_in, saved=False, tracked=False, warning=warning)

    def check_in_status(self, *, login: str | None, token: str | None) -> SimCheckIn:
        if token:
            membership_id = self.tokens.get(token)
        elif login:
            found = self._member_by_login(login)
            membership_id = found.id if found else None
        else:
            raise BadRequest("login or token is required")
        active = self.active_check_in(membership_id) if membership_id else None
        if active is None:
            raise Missing("not checked in")
        return active

    def get_check_in(self, check_in_id: str) -> SimCheckIn:
        found = self.check_ins.get(check_in_id)
        if found is None:
            raise Missing("check-in not found")
        return found

    def todays_check_ins(self) -> list[SimCheckIn]:
        today = self.today()
        zone = self.zone
        return [c for c in self.check_ins.values() if business_day(c.valid_from, zone) == today]

    def work_sessions(
        self, actor: SimAccessToken, start: datetime, end: datetime
    ) -> list[SimCheckIn]:
        """Admins see the space, members themselves."""
        if actor.role is Role.MEMBER:
            return self._between(start, end, actor.membership_id)
        return self._between(start, end, None)

    def membership_check_ins(
        self, membership_id: str, start: datetime, end: datetime
    ) -> list[SimCheckIn]:
        self._member(membership_id)
        return self._between(start, end, membership_id)

    def create_work_session(
        self, actor: SimAccessToken, membership_id: str, valid_from: datetime | None
    ) -> SimCheckIn:
        who = self._member(membership_id)
        self._only_self(actor, membership_id, "members can only check themselves in")
        moment = valid_from or self.now()
        if not who.confirmed:
            raise Invalid(NOT_CONFIRMED)
        if self.check_ins_of(membership_id, business_day(moment, self.zone)):
            raise Invalid(ALREADY_CHECKED_IN)
        if who.plan is Plan.TIME_PASSES and not who.time_passes:
            raise Invalid(NO_TIME_PASSES)
        return self._create(who, moment)

    def check_out(self, actor: SimAccessToken, membership_id: str) -> SimCheckIn:
        self._member(membership_id)
        self._only_self(actor, membership_id, "members can only check themselves out")
        active = self.active_check_in(membership_id)
        if active is None:
            raise Missing("not checked in")
        now = self.now()
        active.checked_out_at = now
        active.valid_until = now
        return active

    def _create(self, who: SimMember, moment: datetime) -> SimCheckIn:
        pass_id = None
        if who.plan is Plan.TIME_PASSES:
            # Cobot picks the cheapest pass; ours are all alike, so the oldest. The
            # time_pass_name override is not simulated.
            pass_id = who.time_passes.pop(0)
            who.used_time_passes.append(pass_id)
        check_in = SimCheckIn(
            id=self._new_check_in_id(),
            membership_id=who.id,
            valid_from=moment,
            valid_until=end_of_business_day(moment, self.zone),
            time_pass_id=pass_id,
        )
        self.check_ins[check_in.id] = check_in
        self._member_check_ins.setdefault(who.id, []).append(check_in)
        self.check_in_creations[(who.id, business_day(moment, self.zone))] += 1
        return check_in

    def _unsaved(self, membership_id: str, moment: datetime) -> SimCheckIn:
        return SimCheckIn(
            id="",
            membership_id=membership_id,
            valid_from=moment,
            valid_until=end_of_business_day(moment, self.zone),
        )

    def _between(
        self, start: datetime, end: datetime, membership_id: str | None
    ) -> list[SimCheckIn]:
        # Strict reading of "check-ins for a given time frame": those that STARTED in
        # [from, to]. A client looking for a check-in must ask from its start.
        pool = (
            self.check_ins.values()
            if membership_id is None
            else self._member_check_ins.get(membership_id, [])
        )
        return [c for c in pool if start <= c.valid_from <= end]

    def _only_self(self, actor: SimAccessToken, membership_id: str, message: str) -> None:
        if actor.role is Role.MEMBER and actor.membership_id != membership_id:
            raise Forbidden(message)

    def _new_check_in_id(self) -> str:
        while True:
            candidate = self._hex(10)
            if candidate not in self.check_ins:
                return candidate
