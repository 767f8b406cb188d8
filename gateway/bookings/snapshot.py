"""The bookings snapshot: each booking door's room, its bookings from yesterday to
tomorrow, and when they were fetched.

It lives in SQLite (a restart, or a power cut during an API outage, keeps the doors
working on what was known) with an in-memory mirror that the tap path reads: a decision
never touches the disk. Each refresh replaces a room's bookings whole, so a booking
deleted at Cobot stops opening the door at the next refresh. Writes go to disk first and
then to the mirror. A refresh that brings nothing new only moves the fetch time, without
an fsync (losing that to a power cut makes the snapshot look older, never wrong).

Walk-up bookings the gateway made are remembered by id (``walk_up_bookings``): a second
tap by their member ends them early, which a booking made any other way never does.

Tables (created here, not in store.py's migrations: the snapshot is this package's own):
``booking_rooms``, ``bookings``, ``walk_up_bookings``.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import structlog

from gateway.cobot.bookings import Booking, Resource
from gateway.errors import StorageError
from gateway.model import Membership
from gateway.store import Database

log = structlog.get_logger(__name__)

_TABLES = (
    """CREATE TABLE IF NOT EXISTS booking_rooms (
        resource_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        units INTEGER NOT NULL,
        fetched_at TEXT NOT NULL,     -- ISO 8601 UTC
        covers_from TEXT NOT NULL,
        covers_to TEXT NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS bookings (
        resource_id TEXT NOT NULL,
        id TEXT NOT NULL,
        starts TEXT NOT NULL,
        ends TEXT NOT NULL,
        membership_id TEXT,           -- NULL: nobody's (an admin's block)
        membership_name TEXT NOT NULL DEFAULT '',
        units INTEGER NOT NULL DEFAULT 1,
        event_id TEXT,
        title TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (resource_id, id)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS walk_up_bookings (
        id TEXT PRIMARY KEY,
        resource_id TEXT NOT NULL,
        ends TEXT NOT NULL
    ) WITHOUT ROWID""",
)
WALK_UP_MEMORY = timedelta(days=2)  # walk-up ids older than this are forgotten


class _Index:
    """Bookings sorted by start, with their start times as floats for ``bisect``: a tap
    looks at the few bookings near now, not at a busy room's hundreds."""

    __slots__ = ("bookings", "longest", "starts")

    def __init__(self, bookings: Iterable[Booking]) -> None:
        self.bookings = sorted(bookings, key=lambda b: (b.start, b.id))
        self.starts = [b.start.timestamp() for b in self.bookings]
        self.longest = max(((b.end - b.start).total_seconds() for b in self.bookings), default=0.0)

    def starting(self, low: float, high: float) -> list[Booking]:
        """The bookings starting in ``[low, high]`` (unix seconds)."""
        return self.bookings[bisect_left(self.starts, low) : bisect_right(self.starts, high)]

    def near(self, at: float, before: float = 0.0, after: float = 0.0) -> list[Booking]:
        """Every booking whose ``[start - before, end + after]`` may hold ``at``."""
        return self.starting(at - after - self.longest, at + before)

    def first_after(self, at: float) -> Booking | None:
        i = bisect_right(self.starts, at)
        return self.bookings[i] if i < len(self.bookings) else None


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """One room as last fetched: ``bookings`` sorted by start, all of them overlapping
    ``[covers_from, covers_to]``; indexed by start, for the room and per member."""

    resource_id: str
    name: str
    units: int
    fetched_at: datetime
    covers_from: datetime
    covers_to: datetime
    bookings: tuple[Booking, ...]
    _all: _Index = field(init=False, repr=False, compare=False)
    _members: dict[str, _Index] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_member: dict[str, list[Booking]] = {}
        for b in self.bookings:
            if b.membership is not None:
                by_member.setdefault(b.membership.id, []).append(b)
        object.__setattr__(self, "_all", _Index(self.bookings))
        object.__setattr__(self, "_members", {m: _Index(bs) for m, bs in by_member.items()})

    def age(self, now: datetime) -> float:
        """Seconds since the fetch (0 when the clock went back)."""
        return max(0.0, (now - self.fetched_at).total_seconds())

    def covers(self, at: datetime) -> bool:
        return self.covers_from <= at <= self.covers_to

    def holding(
        self, membership_id: str, at: datetime, before: float, after: float
    ) -> Booking | None:
        """The member's booking whose ``[start - before, end + after]`` holds ``at``
        (the one ending last when several do)."""
        index = self._members.get(membership_id)
        if index is None:
            return None
        found = [b for b in index.near(at.timestamp(), before, after) if b.holds(at, before, after)]
        return max(found, key=lambda b: b.end) if found else None

    def current(self, at: datetime) -> list[Booking]:
        """Every booking (anyone's, blocks too) running at ``at``, without grace."""
        return [b for b in self._all.near(at.timestamp()) if b.holds(at)]

    def units_free(self, start: datetime, end: datetime) -> int:
        """Units not booked at any moment of ``[start, end)``."""
        candidates = self._all.starting(start.timestamp() - self._all.longest, end.timestamp())
        overlapping = [b for b in candidates if b.start < end and b.end > start]
        # The most units booked at once happens at some booking's start (or at ``start``).
        moments = [start, *(b.start for b in overlapping if b.start > start)]
        busiest = max(
            (sum(b.units for b in overlapping if b.start <= m < b.end) for m in moments),
            default=0,
        )
        return max(0, self.units - busiest)

    def next_of(self, membership_id: str | None, at: datetime) -> Booking | None:
        """The first booking starting after ``at``: the member's, or anyone's (None)."""
        index = self._all if membership_id is None else self._members.get(membership_id)
        return index.first_after(at.timestamp()) if index is not None else None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _row(resource_id: str, b: Booking) -> tuple[object, ...]:
    member = b.membership
    return (
        resource_id,
        b.id,
        _iso(b.start),
        _iso(b.end),
        member.id if member else None,
        member.name if member else "",
        b.units,
        b.event_id,
        b.title,
    )


_INSERT = (
    "INSERT OR REPLACE INTO bookings (resource_id, id, starts, ends, membership_id, "
    "membership_name, units, event_id, title) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class BookingSnapshot:
    """Every booking door's room (resource id -> ``RoomSnapshot``)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._rooms: dict[str, RoomSnapshot] = {}
        self._walk_ups: set[str] = set()

    async def load(self) -> None:
        try:
            for sql in _TABLES:
                await self._db.execute(sql)
            rooms = await self._db.fetchall(
                "SELECT resource_id, name, units, fetched_at, covers_from, covers_to "
                "FROM booking_rooms"
            )
            rows = await self._db.fetchall(
                "SELECT resource_id, id, starts, ends, membership_id, membership_name, units, "
                "event_id, title FROM bookings"
            )
            walk_ups = await self._db.fetchall("SELECT id FROM walk_up_bookings")
        except sqlite3.Error as exc:
            raise StorageError(f"bookings snapshot: cannot read it: {exc}") from exc
        by_room: dict[str, list[Booking]] = {}
        members: dict[tuple[str, str], Membership] = {}  # one object per member
        for rid, bid, starts, ends, mid, mname, units, event, title in rows:
            member = members.setdefault((mid, mname), Membership(mid, mname)) if mid else None
            by_room.setdefault(rid, []).append(
                Booking(bid, rid, _dt(starts), _dt(ends), member, units, event, title)
            )
        self._rooms = {
            rid: RoomSnapshot(
                rid,
                name,
                units,
                _dt(fetched),
                _dt(cfrom),
                _dt(cto),
                tuple(sorted(by_room.get(rid, []), key=lambda b: (b.start, b.id))),
            )
            for rid, name, units, fetched, cfrom, cto in rooms
        }
        self._walk_ups = {bid for (bid,) in walk_ups}
        log.info("bookings_snapshot_loaded", rooms=len(self._rooms), bookings=len(rows))

    # --- the tap path: memory only ----------------------------------------------------

    def room(self, resource_id: str) -> RoomSnapshot | None:
        return self._rooms.get(resource_id)

    def is_walk_up(self, booking_id: str) -> bool:
        return booking_id in self._walk_ups

    # --- writes: disk first, then the mirror -------------------------------------------

    async def replace(
        self,
        resource: Resource,
        bookings: Iterable[Booking],
        *,
        fetched_at: datetime,
        covers_from: datetime,
        covers_to: datetime,
    ) -> tuple[int, int]:
        """Make the room's bookings exactly the fetched list; (added, removed)."""
        fresh = tuple(sorted(bookings, key=lambda b: (b.start, b.id)))
        rid = resource.id
        old = self._rooms.get(rid)
        room = RoomSnapshot(
            rid, resource.name, resource.units, fetched_at, covers_from, covers_to, fresh
        )
        old_ids = {b.id for b in old.bookings} if old else set()
        new_ids = {b.id for b in fresh}
        try:
            if old is not None and old.bookings == fresh and old.name == resource.name:
                await self._db.execute(
                    "UPDATE booking_rooms SET fetched_at = ?, covers_from = ?, covers_to = ?, "
                    "units = ? WHERE resource_id = ?",
                    (_iso(fetched_at), _iso(covers_from), _iso(covers_to), resource.units, rid),
                    durable=False,
                )
            else:
                async with self._db.transaction() as tx:
                    await tx.execute("DELETE FROM bookings WHERE resource_id = ?", (rid,))
                    await tx.executemany(_INSERT, [_row(rid, b) for b in fresh])
                    await tx.execute(
                        "INSERT OR REPLACE INTO booking_rooms (resource_id, name, units, "
                        "fetched_at, covers_from, covers_to) VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            rid,
                            resource.name,
                            resource.units,
                            _iso(fetched_at),
                            _iso(covers_from),
                            _iso(covers_to),
                        ),
                    )
                    await tx.execute(
                        "DELETE FROM walk_up_bookings WHERE ends < ?",
                        (_iso(fetched_at - WALK_UP_MEMORY),),
                    )
        except sqlite3.Error as exc:
            raise StorageError(f"bookings snapshot: cannot store {resource.name}: {exc}") from exc
        self._rooms[rid] = room
        return len(new_ids - old_ids), len(old_ids - new_ids)

    async def booked(self, booking: Booking, *, walk_up: bool) -> None:
        """A booking the gateway just made (or changed): into the room before the next
        refresh shows it. Memory first would be wrong for the disk, but a lost row only
        costs its member the early end: the refresh brings the booking back anyway."""
        room = self._rooms.get(booking.resource_id)
        if room is not None:
            others = [b for b in room.bookings if b.id != booking.id]
            bookings = tuple(sorted([*others, booking], key=lambda b: (b.start, b.id)))
            self._rooms[booking.resource_id] = replace(room, bookings=bookings)
        if walk_up:
            self._walk_ups.add(booking.id)
        try:
            await self._db.execute(_INSERT, _row(booking.resource_id, booking), durable=False)
            if walk_up:
                await self._db.execute(
                    "INSERT OR REPLACE INTO walk_up_bookings (id, resource_id, ends) "
                    "VALUES (?, ?, ?)",
                    (booking.id, booking.resource_id, _iso(booking.end)),
                    durable=False,
                )
        except sqlite3.Error as exc:
            log.warning("bookings_snapshot_store_failed", error=str(exc))

    async def merge(
        self, resource_id: str, start: datetime, end: datetime, bookings: Iterable[Booking]
    ) -> RoomSnapshot | None:
        """A live look at ``[start, end]``: the room's bookings overlapping it become
        exactly ``bookings`` (new ones added, vanished ones dropped); the rest, and the
        fetch time, stay. Memory first; the disk without an fsync (a lost row costs one
        more look, and the next refresh rewrites the room anyway)."""
        room = self._rooms.get(resource_id)
        if room is None:
            return None
        keep = [b for b in room.bookings if not (b.start < end and b.end > start)]
        fresh = [b for b in bookings if b.resource_id == resource_id]
        merged = tuple(sorted([*keep, *fresh], key=lambda b: (b.start, b.id)))
        if merged == room.bookings:
            return room
        gone = {b.id for b in room.bookings} - {b.id for b in merged}
        room = self._rooms[resource_id] = replace(room, bookings=merged)
        try:
            for booking_id in gone:
                await self._db.execute(
                    "DELETE FROM bookings WHERE resource_id = ? AND id = ?",
                    (resource_id, booking_id),
                    durable=False,
                )
            for b in fresh:
                await self._db.execute(_INSERT, _row(resource_id, b), durable=False)
        except sqlite3.Error as exc:
            log.warning("bookings_snapshot_store_failed", error=str(exc))
        return room

    def rooms(self) -> dict[str, RoomSnapshot]:
        return dict(self._rooms)
