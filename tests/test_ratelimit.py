"""The client-side limiter: never more than N per window, live taps first."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.cobot.client import parse_retry_after
from gateway.cobot.ratelimit import Group, Priority, RateLimiter, group_for

WINDOW = 0.4  # seconds; short so the tests run quickly, ordering is what is checked


def test_groups() -> None:
    assert group_for("/api/check_ins") is Group.CHECK_INS
    assert group_for("/api/check_ins/") is Group.CHECK_INS
    assert group_for("/api/check_in") is Group.DEFAULT
    assert group_for("/api/check_ins/42") is Group.DEFAULT
    assert group_for("/api/memberships/x/work_sessions") is Group.DEFAULT


async def test_never_more_than_limit_in_any_window() -> None:
    limiter = RateLimiter({Group.CHECK_INS: 5, Group.DEFAULT: 2}, window=WINDOW)
    sent: list[float] = []

    async def one() -> None:
        await limiter.acquire(Group.CHECK_INS, Priority.LIVE)
        sent.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(12)))
    sent.sort()
    for i in range(len(sent) - 5):
        assert sent[i + 5] - sent[i] >= WINDOW * 0.98, "6 requests inside one window"
    # and it did not dawdle: 12 requests at 5/window need a bit over 2 windows
    assert sent[-1] - sent[0] < WINDOW * 4


async def test_live_goes_before_replay_and_replay_leaves_headroom() -> None:
    limiter = RateLimiter({Group.CHECK_INS: 8, Group.DEFAULT: 60}, window=WINDOW)
    order: list[str] = []

    async def go(name: str, priority: Priority) -> None:
        await limiter.acquire(Group.CHECK_INS, priority)
        order.append(name)

    # Replays fill what they may: 8 minus a headroom of 2.
    await asyncio.gather(*(go(f"r{i}", Priority.REPLAY) for i in range(6)))
    waiting_replay = asyncio.create_task(go("r-late", Priority.REPLAY))
    await asyncio.sleep(0.01)
    assert "r-late" not in order  # the headroom is kept free
    # A live tap finds a free slot at once, even with a replay waiting.
    await asyncio.wait_for(go("live", Priority.LIVE), timeout=WINDOW / 4)
    await waiting_replay
    assert order.index("live") < order.index("r-late")


async def test_waiting_live_blocks_lower_priorities() -> None:
    limiter = RateLimiter({Group.CHECK_INS: 2, Group.DEFAULT: 2}, window=WINDOW)
    await limiter.acquire(Group.DEFAULT, Priority.LIVE)
    await limiter.acquire(Group.DEFAULT, Priority.LIVE)
    order: list[str] = []

    async def go(name: str, priority: Priority) -> None:
        await limiter.acquire(Group.DEFAULT, priority)
        order.append(name)

    sync = asyncio.create_task(go("sync", Priority.SYNC))
    await asyncio.sleep(0.01)
    live = asyncio.create_task(go("live", Priority.LIVE))
    await asyncio.gather(sync, live)
    assert order == ["live", "sync"]


async def test_retry_after_blocks_the_group() -> None:
    limiter = RateLimiter({Group.CHECK_INS: 100, Group.DEFAULT: 100}, window=WINDOW)
    limiter.block(Group.CHECK_INS, 0.3)
    started = time.monotonic()
    other = asyncio.create_task(limiter.acquire(Group.DEFAULT, Priority.SYNC))
    await limiter.acquire(Group.CHECK_INS, Priority.LIVE)
    assert time.monotonic() - started >= 0.29
    assert other.done()  # the other group was never blocked
    (state,) = [s for s in limiter.state() if s.group is Group.CHECK_INS]
    assert state.used == 1 and state.blocked_for == 0


async def test_cancelled_waiter_leaves_no_trace() -> None:
    limiter = RateLimiter({Group.CHECK_INS: 1, Group.DEFAULT: 1}, window=WINDOW)
    await limiter.acquire(Group.CHECK_INS, Priority.LIVE)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await limiter.acquire(Group.CHECK_INS, Priority.LIVE)
    # A cancelled live waiter must not keep blocking replays forever.
    await asyncio.wait_for(limiter.acquire(Group.CHECK_INS, Priority.REPLAY), timeout=WINDOW * 3)
    assert all(s.waiting == 0 for s in limiter.state())


def test_retry_after_parsing() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Sun, 22 Nov 2026 10:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sun, 22 Nov 2026 09:00:00 GMT", now) == 0.0
    assert parse_retry_after(None) == 60.0
    assert parse_retry_after("soon") == 60.0


def test_known_wait() -> None:
    limiter = RateLimiter({Group.CHECK_INS: 2, Group.DEFAULT: 100}, window=60)
    assert limiter.known_wait(Group.CHECK_INS, Priority.LIVE) == 0
    limiter.block(Group.CHECK_INS, 30)
    assert 29 < limiter.known_wait(Group.CHECK_INS, Priority.LIVE) <= 30
    assert limiter.known_wait(Group.DEFAULT, Priority.LIVE) == 0


async def test_a_deadline_shorter_than_a_retry_after_fails_at_once() -> None:
    """Issue 12 case 8: a person waiting must not wait 10 s for a certain NoSlot."""
    from gateway.cobot.client import CobotClient, NoSlot

    limiter = RateLimiter({Group.CHECK_INS: 120, Group.DEFAULT: 60})
    limiter.block(Group.CHECK_INS, 60)  # a 429's Retry-After in force
    # Nothing is sent: the address is never contacted.
    async with CobotClient("http://127.0.0.1:9", "token", limiter) as client:
        started = time.monotonic()
        with pytest.raises(NoSlot, match="next in 60"):
            await client.check_in(token="x", preview=True, deadline=10.0)
        assert time.monotonic() - started < 0.5
        # A full window says the same.
        full = RateLimiter({Group.CHECK_INS: 1, Group.DEFAULT: 60})
        await full.acquire(Group.CHECK_INS, Priority.LIVE)
    async with CobotClient("http://127.0.0.1:9", "token", full) as client:
        with pytest.raises(NoSlot):
            await client.check_in(token="x", preview=True, deadline=10.0)
