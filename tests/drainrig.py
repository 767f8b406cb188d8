"""The outbox and its drainer against the simulated Cobot, without the decision layer:
for tests that fill a queue and watch it drain (exactly once, paced, obeying 429s)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.attendance import Attendance
from gateway.breaker import Breaker
from gateway.cobot.client import CobotClient
from gateway.cobot.ratelimit import WINDOW_MARGIN, Group, RateLimiter
from gateway.config.model import QueueSection
from gateway.drain import Drainer
from gateway.model import RecordKind
from gateway.outbox import Outbox
from gateway.sim import ADMIN_TOKEN, SimSpace, demo_space, run_sim
from gateway.store import Database, open_db


@dataclass
class DrainRig:
    space: SimSpace
    db: Database
    outbox: Outbox
    attendance: Attendance
    client: CobotClient
    breaker: Breaker
    drainer: Drainer

    async def queue_check_in(
        self, token: str, membership_id: str | None, at: datetime | None = None
    ) -> int:
        return await self.outbox.add(
            RecordKind.CHECK_IN,
            token=token,
            membership_id=membership_id,
            reader="front",
            tapped_at=at or datetime.now(UTC),
        )

    async def drained(self, timeout: float = 20.0) -> None:
        self.drainer.wake()
        async with asyncio.timeout(timeout):
            while True:
                await self.outbox.load()
                if self.outbox.depth == 0:
                    return
                await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def drain_rig(
    tmp_path: Path,
    *,
    space: SimSpace | None = None,
    token: str = ADMIN_TOKEN,
    limits: tuple[int, int] = (120, 60),
    window: float = 60.0,
    queue: QueueSection | None = None,
    run: bool = True,
) -> AsyncIterator[DrainRig]:
    """``window`` shortens both the server's and our sliding window alike."""
    space = space or demo_space()
    space.rate_limit.window = window
    async with run_sim(space) as base_url:
        db = await open_db(tmp_path)
        outbox = Outbox(db, 100_000)
        attendance = Attendance(db)
        await attendance.load()
        limiter = RateLimiter(
            {Group.CHECK_INS: limits[0], Group.DEFAULT: limits[1]}, window=window + WINDOW_MARGIN
        )
        client = CobotClient(base_url, token, limiter, timeout=2.0)
        breaker = Breaker(initial=0.1, maximum=0.5)
        drainer = Drainer(outbox, client, attendance, breaker, queue or QueueSection())
        rig = DrainRig(space, db, outbox, attendance, client, breaker, drainer)
        task = asyncio.create_task(drainer.run()) if run else None
        try:
            yield rig
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await client.aclose()
            await db.close()
