"""The simulated MOCO account: users, API keys, presences, and the rules of
moco-presences.txt. Pure state and logic; server.py puts HTTP around it.

Strict readings where the page is vague (each says so where it is applied):
- a presence never crosses midnight and ``to`` is after ``from`` (POST/PUT answer 422);
- POST/PUT of an interval overlapping another presence of the user answers 422
  (the page documents the conflict only for touch, as 423);
- ``touch`` acts on the user's presences of *today* (the account's time zone): an open
  presence of an earlier day is neither closed nor continued;
- only the account key may impersonate (``X-IMPERSONATE-USER-ID``), and a user's own key
  reads and writes only their own presences.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

from gateway.sim.clock import BusinessClock
from gateway.sim.faults import Faults
from gateway.sim.ratelimit import SimRateLimiter

ACCOUNT_KEY = "moco-account-key-0000"
# Not on the presences page; real accounts vary. Strict enough to exercise our pacing.
DEFAULT_LIMIT = 60  # requests per minute per key, every endpoint in one window
TEMPLATE = "moco"  # the rate-limit bucket: one per key


class SimError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class SimUser:
    id: int
    firstname: str
    lastname: str


@dataclass(slots=True)
class SimPresence:
    id: int
    user_id: int
    date: date
    start: time
    end: time | None
    is_home_office: bool = False
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def covers(self, moment: time) -> bool:
        """Whether ``moment`` lies strictly inside this closed presence, or at/after the
        start of an open one."""
        if self.end is None:
            return moment >= self.start
        return self.start <= moment < self.end

    def overlaps(self, start: time, end: time | None) -> bool:
        mine_end = self.end or time(23, 59)
        theirs_end = end or time(23, 59)
        return start < mine_end and self.start < theirs_end


@dataclass(frozen=True, slots=True)
class Caller:
    key: str
    user_id: int  # who acts (the key's user, or the impersonated one)
    admin: bool


@dataclass(slots=True)
class Record:
    method: str
    path: str
    status: int | None
    user_id: int | None
    impersonated: bool
    at: float = 0.0  # the server's monotonic time at arrival
    retry_after: int | None = None  # a 429's header


class MocoSpace:
    def __init__(self, *, timezone: str | tzinfo | None = None, limit: int = DEFAULT_LIMIT) -> None:
        # The account's zone; by default this machine's, which the gateway assumes too.
        self.clock = BusinessClock(timezone or _local_zone())
        self.users: dict[int, SimUser] = {}
        self.admin_keys: set[str] = {ACCOUNT_KEY}
        self.user_keys: dict[str, int] = {}
        self.account_owner = 0  # the account key's own user (set by add_user(owner=True))
        self.presences: dict[int, SimPresence] = {}
        self.rate_limit = SimRateLimiter(limits={}, default_limit=limit)
        self.faults = Faults()
        self.fault_methods: set[str] | None = None  # restrict faults to these methods
        self.requests: list[Record] = []
        self.touches = 0
        self.discarded = 0  # presences touched open and shut within one minute
        self._ids = itertools.count(982237015)

    # --- setup ------------------------------------------------------------------

    def add_user(
        self, user_id: int, firstname: str, lastname: str, *, key: str | None = None
    ) -> SimUser:
        user = self.users[user_id] = SimUser(user_id, firstname, lastname)
        if key is not None:
            self.user_keys[key] = user_id
        if not self.account_owner:
            self.account_owner = user_id
        return user

    def add_presence(
        self, user_id: int, day: date, start: str, end: str | None = None
    ) -> SimPresence:
        p = SimPresence(next(self._ids), user_id, day, _t(start), _t(end) if end else None)
        self.presences[p.id] = p
        return p

    def of(self, user_id: int, day: date | None = None) -> list[SimPresence]:
        """A user's presences (of one day), by date and start."""
        return sorted(
            (p for p in self.presences.values() if p.user_id == user_id and day in (None, p.date)),
            key=lambda p: (p.date, p.start),
        )

    def intervals(self, user_id: int, day: date) -> list[tuple[str, str | None]]:
        """``[("08:00", "12:30"), ("13:00", None)]``: for assertions."""
        return [(_f(p.start), _f(p.end) if p.end else None) for p in self.of(user_id, day)]

    # --- authentication --------------------------------------------------------------

    def authenticate(self, header: str, impersonate: str | None) -> Caller:
        scheme, _, rest = header.partition(" ")
        name, _, key = rest.strip().partition("=")
        if scheme != "Token" or name != "token" or not key:
            raise SimError(401, "Unauthorized: expected 'Authorization: Token token=KEY'")
        admin = key in self.admin_keys
        if not admin and key not in self.user_keys:
            raise SimError(401, "Unauthorized: unknown API key")
        if impersonate is not None:
            if not admin:
                raise SimError(403, "Forbidden: only the account key may impersonate")
            if not impersonate.isdigit() or int(impersonate) not in self.users:
                raise SimError(403, f"Forbidden: no user {impersonate!r} to impersonate")
            return Caller(key, int(impersonate), admin=True)
        return Caller(key, self.user_keys.get(key, self.account_owner), admin=admin)

    # --- the endpoints -------------------------------------------------------------

    def list(self, caller: Caller, query: dict[str, str]) -> list[dict[str, Any]]:
        start, end = query.get("from"), query.get("to")
        if (start is None) != (end is None):
            raise SimError(422, "from and to have to be provided together")
        first = _d(start, "from") if start else None
        last = _d(end, "to") if end else None
        wanted: int | None = None
        if "user_id" in query:
            if not query["user_id"].isdigit():
                raise SimError(422, "user_id must be an integer")
            wanted = int(query["user_id"])
        if not caller.admin or caller.user_id != self.account_owner:
            # A user's key (or an impersonated user) sees only their own presences.
            if wanted is not None and wanted != caller.user_id:
                return []
            wanted = caller.user_id
        out = [
            p
            for p in self.presences.values()
            if (wanted is None or p.user_id == wanted)
            and (first is None or p.date >= first)
            and (last is None or p.date <= last)
        ]
        if "is_home_office" in query:
            flag = query["is_home_office"] == "true"
            out = [p for p in out if p.is_home_office == flag]
        return [self.render(p) for p in sorted(out, key=lambda p: (p.date, p.start))]

    def get(self, caller: Caller, presence_id: int) -> dict[str, Any]:
        return self.render(self._own(caller, presence_id))

    def create(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        """Every presence is created for the user the API key belongs to (or acts as)."""
        if "date" not in body or "from" not in body:
            raise SimError(422, "date and from are mandatory")
        day = _d(body["date"], "date")
        start = _t(body["from"], "from")
        end = _t(body["to"], "to") if body.get("to") not in (None, "") else None
        self._check(caller.user_id, day, start, end, exclude=None)
        p = SimPresence(next(self._ids), caller.user_id, day, start, end)
        p.is_home_office = bool(body.get("is_home_office", False))
        self.presences[p.id] = p
        return self.render(p)

    def update(self, caller: Caller, presence_id: int, body: dict[str, Any]) -> dict[str, Any]:
        p = self._own(caller, presence_id)
        day = _d(body["date"], "date") if "date" in body else p.date
        start = _t(body["from"], "from") if "from" in body else p.start
        if "to" in body:
            end = _t(body["to"], "to") if body["to"] not in (None, "") else None
        else:
            end = p.end
        self._check(p.user_id, day, start, end, exclude=p.id)
        p.date, p.start, p.end = day, start, end
        if "is_home_office" in body:
            p.is_home_office = bool(body["is_home_office"])
        p.updated_at = datetime.now(UTC)
        return self.render(p)

    def delete(self, caller: Caller, presence_id: int) -> None:
        del self.presences[self._own(caller, presence_id).id]

    def touch(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        """Open a presence now, or close the open one now; within one minute: discarded;
        a conflict with an existing presence: 423."""
        self.touches += 1
        local = self.clock.now().astimezone(self.clock.zone)
        today, now = local.date(), time(local.hour, local.minute)
        mine = self.of(caller.user_id, today)
        open_ = next((p for p in reversed(mine) if p.end is None), None)
        if open_ is not None:
            if open_.start > now:
                raise SimError(423, "Locked: the open presence starts later than now")
            if any(p.overlaps(open_.start, now) for p in mine if p is not open_):
                raise SimError(423, "Locked: closing now would overlap another presence")
            open_.end = now
            open_.updated_at = datetime.now(UTC)
            shown = self.render(open_)
            if open_.start == now:
                self.discarded += 1  # started and stopped within the same minute
                del self.presences[open_.id]
            return shown
        if any(p.covers(now) for p in mine):
            raise SimError(423, "Locked: a presence already covers the current time")
        p = SimPresence(next(self._ids), caller.user_id, today, now, None)
        p.is_home_office = bool(body.get("is_home_office", False))
        self.presences[p.id] = p
        return self.render(p)

    # --- helpers ---------------------------------------------------------------------

    def _own(self, caller: Caller, presence_id: int) -> SimPresence:
        p = self.presences.get(presence_id)
        if p is None or p.user_id != caller.user_id:
            raise SimError(404, "presence not found")
        return p

    def _check(
        self, user_id: int, day: date, start: time, end: time | None, exclude: int | None
    ) -> None:
        if end is not None and end <= start:
            raise SimError(422, "to must be after from (a presence ends on its own date)")
        for p in self.of(user_id, day):
            if p.id != exclude and p.overlaps(start, end):
                raise SimError(
                    422, f"overlaps the presence {_f(p.start)}-{_f(p.end) if p.end else ''}"
                )

    def render(self, p: SimPresence) -> dict[str, Any]:
        user = self.users.get(p.user_id) or SimUser(p.user_id, "", "")
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        return {
            "id": p.id,
            "date": p.date.isoformat(),
            "from": _f(p.start),
            "to": _f(p.end) if p.end else None,
            "is_home_office": p.is_home_office,
            "user": {"id": user.id, "firstname": user.firstname, "lastname": user.lastname},
            "created_at": p.created_at.strftime(stamp),
            "updated_at": p.updated_at.strftime(stamp),
        }


def _t(value: object, what: str = "time") -> time:
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        raise SimError(422, f"{what}: expected 'HH:MM', got {value!r}")
    try:
        return time(int(value[:2]), int(value[3:]))
    except ValueError:
        raise SimError(422, f"{what}: expected 'HH:MM', got {value!r}") from None


def _d(value: object, what: str) -> date:
    try:
        return date.fromisoformat(str(value)) if isinstance(value, str) else date.min
    except ValueError:
        raise SimError(422, f"{what}: expected 'YYYY-MM-DD', got {value!r}") from None


def _f(value: time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def demo_moco() -> MocoSpace:
    """The demo's account: one staff member (user 933590696, acted for by the account
    key) and a second with a key of their own."""
    space = MocoSpace()
    space.add_user(1, "Acme", "Admin")
    space.add_user(933590696, "John", "Doe")
    space.add_user(933590697, "Erika", "Muster", key="moco-user-key-933590697")
    return space


def _local_zone() -> tzinfo:
    zone = datetime.now().astimezone().tzinfo
    assert zone is not None
    return zone
