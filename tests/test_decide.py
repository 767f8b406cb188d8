"""Tap -> decision -> door -> check-in, against the simulated Cobot over real HTTP."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import structlog

from gateway.model import Direction, Outcome, Signal
from gateway.sim import demo_space
from gateway.sim.seed import (
    ADA,
    ALAN,
    GRACE,
    KATHERINE,
    NFC_TOKEN,
    NO_PASS_TOKEN,
    PASS_TOKEN,
    RDM_TOKEN,
    UNCONFIRMED_TOKEN,
)
from tests.harness import eventually, rig

DEADLINE = 0.5


async def test_online_preview_opens_then_checks_in(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        d = await r.tap(RDM_TOKEN)
        assert d.outcome is Outcome.OPENED_ONLINE and d.opened
        assert d.membership is not None and d.membership.id == ADA
        assert r.door.opened == 1
        await eventually(lambda: len(r.space.check_ins_of(ADA)) == 1)
        await eventually(lambda: r.gateway.outbox.depth == 0)
        previews = [q for q in r.space.requests if q.path == "/api/check_ins"]
        assert len(previews) == 2  # the preview, then the real check-in


async def test_reentry_needs_no_api_call(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.tap(RDM_TOKEN)
        await eventually(lambda: r.gateway.outbox.depth == 0)
        calls = r.api_calls()
        d = await r.tap(RDM_TOKEN)
        assert d.outcome is Outcome.OPENED_CACHED and d.opened
        assert r.api_calls() == calls
        assert r.door.opened == 2


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (NO_PASS_TOKEN, "time pass"),
        (UNCONFIRMED_TOKEN, "confirmed"),
        ("FFFFFFFFFF", "oken"),
    ],
)
async def test_refusal_keeps_door_shut_and_shows_reason(
    tmp_path: Path, token: str, reason: str
) -> None:
    async with rig(tmp_path) as r:
        d = await r.tap(token)
        assert d.outcome is Outcome.REFUSED and not d.opened
        assert d.reason is not None and reason in d.reason
        assert r.door.opened == 0
        await eventually(lambda: Signal.REFUSED in r.door.signals)
        assert r.gateway.outbox.depth == 0
        assert not r.space.check_ins_of(ALAN)


async def test_hanging_api_decides_locally_within_deadline(tmp_path: Path) -> None:
    async with rig(tmp_path, decision_deadline=DEADLINE) as r:
        r.space.faults.set("hang")
        d = await r.tap(NFC_TOKEN)
        assert d.outcome is Outcome.OPENED_OFFLINE and d.opened
        assert d.latency_ms < DEADLINE * 1000 + 400  # the deadline, not the 10 s timeout
        # The breaker is open now: the next tap does not wait at all.
        started = time.monotonic()
        d2 = await r.tap(PASS_TOKEN)
        assert d2.outcome is Outcome.OPENED_OFFLINE
        assert time.monotonic() - started < DEADLINE
        assert r.gateway.outbox.depth == 2
        # Unknown cards stay out while offline.
        assert (await r.tap("FFFFFFFFFF")).outcome is Outcome.DENIED_OFFLINE
        # The API comes back: both check-ins land exactly once.
        r.space.faults.clear()
        r.gateway.breaker.probe_soon()
        r.gateway.drainer.wake()
        await eventually(lambda: r.gateway.outbox.depth == 0, timeout=10)
        assert len(r.space.check_ins_of(GRACE)) == 1
        assert len(r.space.check_ins_of(KATHERINE)) == 1
        assert not r.space.doubled()


async def test_refused_connection_decides_locally(tmp_path: Path) -> None:
    async with rig(tmp_path, decision_deadline=DEADLINE) as r:
        r.gateway.client._base = "http://127.0.0.1:9"  # discard port: connection refused
        d = await r.tap(RDM_TOKEN)
        assert d.outcome is Outcome.OPENED_OFFLINE and d.opened
        assert r.gateway.breaker.is_open


async def test_deny_policy_keeps_everyone_out_offline(tmp_path: Path) -> None:
    async with rig(tmp_path, decision_deadline=DEADLINE, offline_policy="deny") as r:
        r.space.faults.set("hang")
        d = await r.tap(RDM_TOKEN)
        assert d.outcome is Outcome.DENIED_OFFLINE and not d.opened
        assert r.gateway.outbox.depth == 0


async def test_garbage_answer_is_not_trusted(tmp_path: Path) -> None:
    async with rig(tmp_path, decision_deadline=DEADLINE) as r:
        r.space.faults.set("garbage")
        d = await r.tap(RDM_TOKEN)
        assert d.outcome is Outcome.OPENED_OFFLINE  # known token, decided locally


async def test_bad_access_token_is_loud_once_and_decides_locally(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, token="not-a-valid-token", decision_deadline=DEADLINE) as r:
        with structlog.testing.capture_logs() as logs:
            for _ in range(3):
                d = await r.tap(RDM_TOKEN)
                assert d.outcome is Outcome.DENIED_OFFLINE  # sync failed: cache empty
        assert [e["event"] for e in logs].count("cobot_auth_failed") <= 1
        statuses = {q.status for q in r.space.requests}
        assert statuses == {401}
        assert len(r.space.requests) <= 5  # no retry storm


async def test_exit_reader_checks_out(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.tap(RDM_TOKEN)
        await eventually(lambda: r.space.active_check_in(ADA) is not None)
        d = await r.tap(RDM_TOKEN, Direction.OUT)
        assert d.outcome is Outcome.CHECKED_OUT and d.opened
        await eventually(lambda: r.space.active_check_in(ADA) is None)
        assert r.gateway.attendance.until(ADA) is None


async def test_token_removed_upstream_stops_opening_after_sync(tmp_path: Path) -> None:
    space = demo_space()
    async with rig(tmp_path, space=space, decision_deadline=DEADLINE) as r:
        assert r.gateway.cache.lookup(RDM_TOKEN) is not None
        space.delete_token(RDM_TOKEN)
        await r.gateway.sync.sync_once()
        assert r.gateway.cache.lookup(RDM_TOKEN) is None
        r.space.faults.set("hang")
        d = await r.tap(RDM_TOKEN)
        assert d.outcome is Outcome.DENIED_OFFLINE and not d.opened


async def test_taps_from_one_reader_do_not_wait_for_each_others_delivery(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        results = await asyncio.gather(r.tap(RDM_TOKEN), r.tap(NFC_TOKEN), r.tap(PASS_TOKEN))
        assert all(d.outcome is Outcome.OPENED_ONLINE for d in results)
        await eventually(lambda: r.gateway.outbox.depth == 0)
        assert not r.space.doubled()


async def test_garbage_token_list_keeps_the_cache(tmp_path: Path) -> None:
    async with rig(tmp_path, decision_deadline=DEADLINE) as r:
        before = len(r.gateway.cache)
        assert before > 0
        r.space.faults.set("garbage", paths=["/api/check_in_tokens"])
        delay = await r.gateway.sync.sync_once()
        assert len(r.gateway.cache) == before  # what we knew still opens the door
        assert r.gateway.sync.last_error is not None and "not JSON" in r.gateway.sync.last_error
        assert 0 < delay < r.gateway.cfg.gateway.token_sync_interval  # retried sooner
        r.space.faults.clear()
        await r.gateway.sync.sync_once()
        assert r.gateway.sync.last_error is None
