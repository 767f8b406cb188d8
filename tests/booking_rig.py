"""A booking door's parts against the simulated Cobot over real HTTP: the snapshot in a
real SQLite file, the refresher, the rule; the tap's time and the space's are the test's."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.attendance import Attendance
from gateway.bookings.refresh import RoomRefresher
from gateway.bookings.snapshot import BookingSnapshot
from gateway.breaker import Breaker
from gateway.cache import TokenCache
from gateway.cobot.client import CobotClient
from gateway.cobot.ratelimit import Group, RateLimiter
from gateway.model import Direction, Membership, Tap, TokenRecord
from gateway.rules.base import Verdict
from gateway.rules.booking import BookingRule, RoomDoor
from gateway.sim import SimSpace, demo_space
from gateway.sim.seed import ADMIN_TOKEN
from gateway.store import Database, open_db
from tests.sim_helpers import Sim, serve

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)  # a Monday
ROOM = "777"
LIMITS = {Group.CHECK_INS: 120, Group.DEFAULT: 60, Group.BOOKING_WRITES: 10}


@dataclass
class Rig:
    sim: Sim
    db: Database
    client: CobotClient
    cache: TokenCache
    attendance: Attendance
    snapshot: BookingSnapshot
    breaker: Breaker

    @property
    def space(self) -> SimSpace:
        return self.sim.space

    def refresher(self, resource_id: str = ROOM, door: str = "room") -> RoomRefresher:
        return RoomRefresher(
            self.snapshot,
            self.client,
            self.breaker,
            door=door,
            resource_id=resource_id,
            interval=300.0,
            now=self.space.now,
        )

    def rule(self, max_age: float = 1800.0, **room: object) -> BookingRule:
        settings = RoomDoor(door="room", resource_id=ROOM, **room)  # type: ignore[arg-type]
        return BookingRule(
            settings,
            self.cache,
            self.snapshot,
            self.attendance,
            self.client,
            self.breaker,
            max_age=max_age,
        )

    async def tap(self, rule: BookingRule, token: str, at: datetime | None = None) -> Verdict:
        moment = at or self.space.now()
        return await rule.judge(Tap("room", token, Direction.IN, moment, time.monotonic()))


def fresh_space() -> SimSpace:
    space = demo_space()
    space.set_time(T0)
    space.rooms.add_resource("Room 7", id=ROOM)
    return space


@asynccontextmanager
async def rig(tmp_path: Path, space: SimSpace | None = None) -> AsyncIterator[Rig]:
    space = space or fresh_space()
    db = await open_db(tmp_path)
    try:
        cache = TokenCache(db)
        await cache.load()
        await cache.replace_all(
            TokenRecord(t, Membership(m.id, m.name)) for t, m in space.list_tokens()
        )
        attendance = Attendance(db)
        await attendance.load()
        snapshot = BookingSnapshot(db)
        await snapshot.load()
        async with (
            serve(space) as sim,
            CobotClient(sim.url, ADMIN_TOKEN, RateLimiter(LIMITS), timeout=2.0) as client,
        ):
            yield Rig(sim, db, client, cache, attendance, snapshot, Breaker())
    finally:
        await db.close()
