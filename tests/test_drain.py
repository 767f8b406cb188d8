"""Delivering the outbox exactly once, against the simulated Cobot over HTTP."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from gateway.config.model import QueueSection
from gateway.outbox import State
from gateway.sim import demo_space
from gateway.sim.seed import ADA, ALAN, GRACE, NFC_TOKEN, NO_PASS_TOKEN, RDM_TOKEN
from tests.drainrig import drain_rig


async def test_backlog_is_delivered_once_and_old_taps_keep_their_time(tmp_path: Path) -> None:
    space = demo_space()
    space.set_time(datetime.now(UTC), running=True)
    tapped = datetime.now(UTC) - timedelta(minutes=30)
    async with drain_rig(tmp_path, space=space) as r:
        old = await r.queue_check_in(RDM_TOKEN, ADA, tapped)
        fresh = await r.queue_check_in(NFC_TOKEN, GRACE)
        await r.drained()
        assert (await r.outbox.get(old)).state is State.DELIVERED  # type: ignore[union-attr]
        assert (await r.outbox.get(fresh)).state is State.DELIVERED  # type: ignore[union-attr]
        (ada,) = space.check_ins_of(ADA)
        # Billed from the tap, not from the replay: work_sessions with valid_from.
        assert abs((ada.valid_from - tapped).total_seconds()) < 1
        assert len(space.check_ins_of(GRACE)) == 1
        assert not space.doubled()
        paths = {q.path for q in space.requests}
        assert f"/api/memberships/{ADA}/work_sessions" in paths


async def test_replay_with_valid_from_can_be_switched_off(tmp_path: Path) -> None:
    queue = QueueSection(replay_with_valid_from=False)
    async with drain_rig(tmp_path, queue=queue) as r:
        await r.queue_check_in(RDM_TOKEN, ADA, datetime.now(UTC) - timedelta(hours=1))
        await r.drained()
        assert all("work_sessions" not in q.path for q in r.space.requests)
        assert len(r.space.check_ins_of(ADA)) == 1


async def test_lost_answer_is_looked_up_not_resent(tmp_path: Path) -> None:
    async with drain_rig(tmp_path) as r:
        # Cobot does the work, then the answer is lost: the outcome is unknown to us.
        r.space.faults.set("garbage", paths=["/api/check_ins"], count=1, commit=True)
        entry = await r.queue_check_in(RDM_TOKEN, ADA)
        await r.drained()
        assert len(r.space.check_ins_of(ADA)) == 1
        assert not r.space.doubled()
        done = await r.outbox.get(entry)
        assert done is not None and done.state is State.DELIVERED and done.attempts == 1
        # The second round looked (GET) before it would have sent (POST) again.
        posts = [q for q in r.space.requests if q.method == "POST"]
        assert len(posts) == 1


async def test_hanging_api_then_back(tmp_path: Path) -> None:
    async with drain_rig(tmp_path) as r:
        r.space.faults.set("hang", commit=True)
        await r.queue_check_in(RDM_TOKEN, ADA)
        await asyncio.sleep(2.5)  # the client's 2 s timeout passes: outcome unknown
        assert r.breaker.is_open
        r.space.faults.clear()
        await r.drained()
        assert len(r.space.check_ins_of(ADA)) == 1 and not r.space.doubled()


async def test_refusal_is_final_with_the_api_reason(tmp_path: Path) -> None:
    async with drain_rig(tmp_path) as r:
        entry = await r.queue_check_in(NO_PASS_TOKEN, ALAN)
        await r.drained()
        failed = await r.outbox.get(entry)
        assert failed is not None and failed.state is State.FAILED
        assert "time pass" in (failed.last_error or "").lower()
        assert await r.outbox.retry(entry)  # an operator can put it back


async def test_already_checked_in_counts_as_delivered(tmp_path: Path) -> None:
    space = demo_space()
    async with drain_rig(tmp_path, space=space) as r:
        await r.queue_check_in(RDM_TOKEN, ADA, datetime.now(UTC) - timedelta(minutes=10))
        await r.drained()
        # The same member again the same day, also old enough for work_sessions: 422.
        again = await r.queue_check_in(RDM_TOKEN, ADA, datetime.now(UTC) - timedelta(minutes=5))
        await r.drained()
        assert (await r.outbox.get(again)).state is State.DELIVERED  # type: ignore[union-attr]
        assert len(space.check_ins_of(ADA)) == 1


async def test_401_during_drain_pauses_without_a_storm(tmp_path: Path) -> None:
    space = demo_space()
    bad = space.add_access_token("revocable-token")
    async with drain_rig(tmp_path, space=space, token="revocable-token") as r:
        del space.access_tokens[bad.token]  # revoked mid-operation
        with structlog.testing.capture_logs() as logs:
            for token, member in ((RDM_TOKEN, ADA), (NFC_TOKEN, GRACE)):
                await r.queue_check_in(token, member)
            r.drainer.wake()
            await asyncio.sleep(1.5)
        assert [e["event"] for e in logs].count("cobot_auth_failed") == 1
        assert len(space.requests) <= 2  # one attempt, then a long pause: no storm
        await r.outbox.load()
        assert r.outbox.depth == 2
        # A person fixes the token; an operator says retry: it drains.
        space.add_access_token("revocable-token")
        for e in await r.outbox.head():
            await r.outbox.retry(e.id)
        await r.drained()
        assert len(space.check_ins_of(ADA)) == 1 and len(space.check_ins_of(GRACE)) == 1


async def test_429_retry_after_is_obeyed(tmp_path: Path) -> None:
    space = demo_space()
    space.rate_limit.limits["/api/check_ins"] = 2  # the server is stricter than we think
    members = [
        space.add_member(f"M{i}", f"m{i}@example.com", "pw", tokens=[f"T{i:08d}"]) for i in range(4)
    ]
    async with drain_rig(tmp_path, space=space, limits=(50, 50), window=3.0) as r:
        for i, m in enumerate(members):
            await r.queue_check_in(f"T{i:08d}", m.id)
        await r.drained(timeout=30)
        refused = [q for q in space.requests if q.status == 429]
        assert len(refused) == 1  # one 429, then the whole group waited
        after = [q for q in space.requests if q.at > refused[0].at and q.path == "/api/check_ins"]
        gap = after[0].at - refused[0].at
        # Retry-After is whole seconds, rounded up: never earlier than the window allows.
        assert gap >= 1.0
        assert space.rate_limit.max_in_window <= 2
        assert not space.doubled()


async def test_drain_never_exceeds_the_window(tmp_path: Path) -> None:
    space = demo_space()
    count = 25
    members = [
        space.add_member(f"W{i}", f"w{i}@example.com", "pw", tokens=[f"W{i:08d}"])
        for i in range(count)
    ]
    async with drain_rig(tmp_path, space=space, limits=(10, 10), window=2.0) as r:
        for i, m in enumerate(members):
            await r.queue_check_in(f"W{i:08d}", m.id)
        started = time.monotonic()
        await r.drained(timeout=60)
        took = time.monotonic() - started
    assert space.rate_limit.rejected == 0
    assert space.rate_limit.max_in_window <= 10
    assert sum(len(space.check_ins_of(m.id)) for m in members) == count
    assert took >= 2.0  # 25 at 10 per 2 s cannot be faster than two windows


async def test_a_live_check_out_does_not_overtake_a_queued_check_in(tmp_path: Path) -> None:
    from gateway.model import RecordKind

    async with drain_rig(tmp_path, run=False) as r:
        tapped = datetime.now(UTC) - timedelta(minutes=20)
        check_in = await r.queue_check_in(RDM_TOKEN, ADA, tapped)
        check_out = await r.outbox.add(
            RecordKind.CHECK_OUT,
            token=RDM_TOKEN,
            membership_id=ADA,
            reader="exit",
            tapped_at=datetime.now(UTC),
        )
        assert not await r.drainer.deliver_id(check_out)  # waits for the check-in
        assert r.space.check_ins_of(ADA) == []
        assert await r.drainer.deliver_id(check_in)
        assert await r.drainer.deliver_id(check_out)
        (ada,) = r.space.check_ins_of(ADA)
        assert ada.checked_out_at is not None  # in, then out: in that order
