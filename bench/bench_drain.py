"""Issue 3 benchmarks: draining a backlog at the rate limit, a live tap during the drain,
and what the durable outbox commit costs.

The drain runs against the simulator with both windows shortened from 60 s to 6 s (the
same limit per window, the same code): the ratio to the ideal is what is measured, and a
full-length run would take minutes for the same figure.

    python -m bench drain
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import median, pct
from gateway.attendance import Attendance
from gateway.breaker import Breaker
from gateway.cobot.client import CobotClient
from gateway.cobot.ratelimit import WINDOW, WINDOW_MARGIN, Group, Priority, RateLimiter
from gateway.config.model import QueueSection
from gateway.drain import Drainer
from gateway.model import RecordKind
from gateway.outbox import Outbox
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from gateway.sim.seed import RDM_TOKEN
from gateway.store import open_db

LIMIT = 120  # Cobot's /api/check_ins limit per window
SHORT_WINDOW = 6.0
BACKLOG = 4 * LIMIT  # four windows' worth
COMMITS = 2000


async def drain(with_live: bool) -> dict[str, object]:
    from gateway.log import configure

    configure("error", "json")
    space = demo_space()
    space.rate_limit.window = SHORT_WINDOW
    members = [
        space.add_member(f"B{i}", f"b{i}@example.com", "pw", tokens=[f"B{i:09d}"])
        for i in range(BACKLOG)
    ]
    scale = SHORT_WINDOW / WINDOW  # our safety margin shrinks with the window
    with tempfile.TemporaryDirectory() as tmp:
        async with run_sim(space) as base_url:
            db = await open_db(Path(tmp))
            outbox = Outbox(db, 100_000)
            attendance = Attendance(db)
            limiter = RateLimiter(
                {Group.CHECK_INS: LIMIT, Group.DEFAULT: 60},
                window=SHORT_WINDOW + WINDOW_MARGIN * scale,
            )
            client = CobotClient(base_url, ADMIN_TOKEN, limiter)
            drainer = Drainer(outbox, client, attendance, Breaker(), QueueSection())
            now = datetime.now(UTC)
            for i, m in enumerate(members):
                await outbox.add(
                    RecordKind.CHECK_IN,
                    token=f"B{i:09d}",
                    membership_id=m.id,
                    reader="front",
                    tapped_at=now,
                )
            live: list[float] = []

            async def live_taps() -> None:
                while True:
                    await asyncio.sleep(0.7)
                    started = time.perf_counter()
                    await client.check_in(token=RDM_TOKEN, preview=True, priority=Priority.LIVE)
                    live.append(time.perf_counter() - started)

            started = time.perf_counter()
            task = asyncio.create_task(drainer.run())
            taps = asyncio.create_task(live_taps() if with_live else asyncio.sleep(0))
            while True:
                await outbox.load()
                if outbox.depth == 0:
                    break
                await asyncio.sleep(0.05)
            took = time.perf_counter() - started
            for t in (task, taps):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            await client.aclose()
            await db.close()
    return {
        "took": took,
        "live": live,
        "rejected": space.rate_limit.rejected,
        "max_in_window": space.rate_limit.max_in_window,
        "created": sum(space.check_in_creations.values()),
        "doubled": len(space.doubled()),
    }


def report(alone: dict[str, object], busy: dict[str, object]) -> None:
    ideal = BACKLOG * SHORT_WINDOW / LIMIT
    took = float(alone["took"])  # type: ignore[arg-type]
    live: list[float] = busy["live"]  # type: ignore[assignment]
    print(
        f"| drain of {BACKLOG} queued check-ins, {LIMIT} per {SHORT_WINDOW:.0f} s window | value |"
    )
    print("|---|---|")
    print(f"| drain time | {took:.1f} s |")
    print(f"| window-bound ideal ({BACKLOG} x window / limit) | {ideal:.1f} s |")
    print(f"| **ratio** (target <= 1.05) | **{took / ideal:.3f}** |")
    print(
        f"| 429s from the simulator, both runs (target 0) "
        f"| {int(alone['rejected']) + int(busy['rejected'])} |"
    )  # type: ignore[call-overload]
    print(
        f"| most requests in any window (limit {LIMIT}) "
        f"| {max(alone['max_in_window'], busy['max_in_window'])} |"
    )  # type: ignore[type-var]
    print(f"| check-ins created / doubled | {alone['created']} / {alone['doubled']} |")
    print(
        f"| second run, a live preview every 0.7 s during the drain: latency p50 / p99 / "
        f"max (target <= 1 s) | {pct(live, 50) * 1000:.0f} / {pct(live, 99) * 1000:.0f} / "
        f"{max(live) * 1000:.0f} ms ({len(live)} taps) |"
    )
    print()


async def commits() -> None:
    rates, costs = [], []
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:  # the real disk, not tmpfs
        db = await open_db(Path(tmp))
        outbox = Outbox(db, 10**7)
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(COMMITS):
                t = time.perf_counter()
                await outbox.add(
                    RecordKind.CHECK_IN,
                    token="0A1B2C3D4E",
                    membership_id="m",
                    reader="front",
                    tapped_at=datetime.now(UTC),
                )
                costs.append((time.perf_counter() - t) * 1000)
            rates.append(COMMITS / (time.perf_counter() - started))
        await db.close()
    print(
        f"Outbox commits (WAL, synchronous=FULL, one transaction per tap), this disk: "
        f"median **{median(rates):,.0f}/s**; the commit's cost on the door path "
        f"p50 **{pct(costs, 50):.2f} ms**, p99 **{pct(costs, 99):.2f} ms**."
    )
    print()


def main() -> None:
    report(asyncio.run(drain(with_live=False)), asyncio.run(drain(with_live=True)))
    asyncio.run(commits())
