"""Issue 15 benchmarks: a staff tap's time to feedback, and a day of 50 users' taps
replayed at the configured MOCO limit against the window-bound ideal.

Latency: the whole gateway (decision, outbox commit, touch, feedback) against the
simulated MOCO over loopback HTTP; the touch's own round trip is measured apart, so the
gateway's own share is what is left. The replay runs with MOCO's window shortened from
60 s to 6 s on both sides (the same limit per window, the same code): the ratio to the
ideal is what is measured.

    python -m bench moco
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import pct
from gateway.app import Gateway
from gateway.breaker import Breaker
from gateway.cobot.ratelimit import WINDOW, WINDOW_MARGIN, Group, RateLimiter
from gateway.config import parse_config
from gateway.config.model import MocoSection, MocoUser
from gateway.moco.client import MocoClient
from gateway.moco.keys import MocoKeys
from gateway.moco.replay import Replayer
from gateway.moco.staff import StaffBook
from gateway.moco_sim import ACCOUNT_KEY, MocoSpace, run_moco_sim
from gateway.moco_sim.clock import StepClock
from gateway.model import Direction, RecordKind, Signal
from gateway.outbox import Outbox
from gateway.readers.base import make_tap
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from gateway.sim.clock import BusinessClock
from gateway.store import open_db

TAPS = 60
USERS = 50
DAY = ("08:00", "12:00", "13:00", "17:00")
LIMIT = MocoSection.__dataclass_fields__["rpm"].default  # the configured default
SHORT_WINDOW = 6.0


class FeedbackDoor:
    def __init__(self) -> None:
        self.shown = asyncio.Event()

    @property
    def name(self) -> str:
        return "front"

    async def open(self) -> None:
        return None

    async def signal(self, signal: Signal) -> None:
        if signal in (Signal.CLOCKED_IN, Signal.CLOCKED_OUT):
            self.shown.set()

    async def aclose(self) -> None:
        return None


async def latency() -> dict[str, list[float]]:
    from gateway.log import configure

    configure("error", "json")
    clock = StepClock()
    moco = MocoSpace()
    moco.add_user(933590696, "John", "Doe")
    moco.clock = BusinessClock(moco.clock.zone, wall=clock.now)
    total: list[float] = []
    request: list[float] = []
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:  # the real disk: fsyncs
        async with run_sim(demo_space()) as cobot_url, run_moco_sim(moco) as moco_url:
            cfg = parse_config(
                {
                    "gateway": {"state_dir": tmp},
                    "cobot": {"base_url": cobot_url},
                    "moco": {
                        "base_url": moco_url,
                        "rpm": 10_000,  # pacing is the replay's benchmark, not this one
                        "users": [{"token": "7F00000001", "user_id": 933590696}],
                    },
                    "readers": [
                        {"type": "keyboard", "name": "front", "door": "front", "record": ["moco"]}
                    ],
                    "doors": [{"name": "front", "type": "command", "command": ["true"]}],
                },
                "bench",
            )
            door = FeedbackDoor()
            gw = Gateway(
                cfg,
                ADMIN_TOKEN,
                doors={"front": door},
                readers=[],
                clock=clock,
                moco_keys=MocoKeys(ACCOUNT_KEY),
            )
            task = asyncio.create_task(gw.run())
            await gw.ready.wait()
            assert gw.moco is not None
            client = gw.moco.client
            touch = client.touch

            async def timed(user_id: int, **kw: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await touch(user_id, **kw)
                finally:
                    request.append(time.perf_counter() - started)

            client.touch = timed  # type: ignore[method-assign]
            rule = gw.reader_rule("front", door)
            for _ in range(TAPS):
                clock.to_minute_start()
                clock.advance(60)  # and a minute more: min_interval
                door.shown.clear()
                tap = make_tap("front", "7F00000001", Direction.IN, clock)
                started = time.perf_counter()
                await gw.decider.decide(tap, door, rule)
                await door.shown.wait()
                total.append(time.perf_counter() - started)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return {"total": total, "request": request}


async def replay() -> dict[str, float]:
    from gateway.log import configure

    configure("error", "json")
    moco = MocoSpace(limit=LIMIT)
    moco.rate_limit.window = SHORT_WINDOW
    users = [MocoUser(token=f"7E{i:08d}", user_id=7000 + i) for i in range(USERS)]
    for u in users:
        moco.add_user(u.user_id, "Staff", str(u.user_id))
    day = datetime.now().astimezone().replace(second=5, microsecond=0) - timedelta(days=1)
    scale = SHORT_WINDOW / WINDOW
    with tempfile.TemporaryDirectory() as tmp:
        async with run_moco_sim(moco) as url:
            db = await open_db(Path(tmp))
            outbox = Outbox(db, 100_000)
            for hhmm in DAY:
                h, m = map(int, hhmm.split(":"))
                for u in users:
                    await outbox.add(
                        RecordKind.TOUCH,
                        token=u.token,
                        membership_id=str(u.user_id),
                        reader="staff",
                        tapped_at=day.replace(hour=h, minute=m),
                        backend="moco",
                    )
            limiter = RateLimiter({Group.MOCO: LIMIT}, window=SHORT_WINDOW + WINDOW_MARGIN * scale)
            client = MocoClient(url, MocoKeys(ACCOUNT_KEY), limiter)
            replayer = Replayer(outbox, client, StaffBook(users), Breaker(), StepClock())
            started = time.perf_counter()
            task = asyncio.create_task(replayer.run())
            while True:
                await outbox.load()
                if outbox.depth == 0:
                    break
                await asyncio.sleep(0.05)
            took = time.perf_counter() - started
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await client.aclose()
            await db.close()
    wrong = sum(
        moco.intervals(u.user_id, day.date()) != [("08:00", "12:00"), ("13:00", "17:00")]
        for u in users
    )
    return {
        "took": took,
        "requests": len(moco.requests),
        "rejected": moco.rate_limit.rejected,
        "max_in_window": moco.rate_limit.max_in_window,
        "wrong": wrong,
        "touches": moco.touches,
    }


def main() -> None:
    lat = asyncio.run(latency())
    total, request = lat["total"], lat["request"]
    own = [t - r for t, r in zip(total, request, strict=True)]
    print(f"| MOCO tap -> feedback, {TAPS} taps (in/out), loopback sim | p50 | p99 |")
    print("|---|---|---|")
    for name, values in (("tap to feedback", total), ("of it the touch request", request)):
        print(f"| {name} | {pct(values, 50) * 1000:.1f} ms | {pct(values, 99) * 1000:.1f} ms |")
    p50, p99 = pct(own, 50) * 1000, pct(own, 99) * 1000
    print(f"| **gateway's own time** | **{p50:.1f} ms** | **{p99:.1f} ms** |")
    print()
    r = asyncio.run(replay())
    needed = USERS * (1 + len(DAY) // 2)  # a read and one POST per in/out pair
    ideal = needed * SHORT_WINDOW / LIMIT
    print(
        f"| replay of a day: {USERS} users x {len(DAY)} taps, {LIMIT} requests per "
        f"{SHORT_WINDOW:.0f} s window | value |"
    )
    print("|---|---|")
    print(f"| requests sent (minimum: a read + a POST per pair = {needed}) | {r['requests']} |")
    print(f"| replay time | {r['took']:.1f} s |")
    print(f"| window-bound ideal ({needed} x window / limit) | {ideal:.1f} s |")
    print(f"| **ratio** | **{r['took'] / ideal:.3f}** |")
    seen = f"{r['rejected']:.0f} / {r['max_in_window']:.0f}"
    print(f"| 429s / most requests in any window (limit {LIMIT}) | {seen} |")
    print(f"| users with wrong presences / touches sent | {r['wrong']:.0f} / {r['touches']:.0f} |")
    print()
