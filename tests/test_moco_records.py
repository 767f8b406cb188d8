"""Staff taps clocked at the simulated MOCO over real HTTP: touch online, replay offline."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from gateway.moco.keys import MocoKeys
from gateway.moco_sim import demo_moco
from gateway.model import Outcome, Signal
from gateway.store import DB_NAME
from tests.moco_helpers import (
    OWN_KEY,
    STAFF,
    STAFF_OWN_KEY,
    USER,
    USER_OWN,
    MocoRig,
    eventually,
    moco_rig,
)


@pytest.fixture(autouse=True)
def info_logs() -> Iterator[None]:
    """These tests read info events; another test in this process (the doctor) may have
    configured structlog to drop them."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    yield
    structlog.configure(**saved)


def rows(r: MocoRig) -> list[tuple[str, str | None]]:
    db_path = r.gateway.cfg.gateway.state_dir / DB_NAME
    with sqlite3.connect(db_path) as db:
        return db.execute(
            "SELECT state, last_error FROM outbox WHERE backend = 'moco' ORDER BY id"
        ).fetchall()


def today(r: MocoRig) -> object:
    return r.clock.now().astimezone().date()


def hhmm(r: MocoRig) -> str:
    return r.clock.now().astimezone().strftime("%H:%M")


async def test_in_and_out_are_touches_with_feedback_and_times_in_the_log(tmp_path: Path) -> None:
    async with moco_rig(tmp_path) as r:
        r.clock.to_minute_start()
        start = hhmm(r)
        with capture_logs() as logs:
            decision = await r.tap(STAFF, reader="front")
            # Not a Cobot member: the staff rule lets them in and clocks them.
            assert decision.outcome is Outcome.STAFF and decision.opened
            await eventually(lambda: Signal.CLOCKED_IN in r.door.signals)
            assert r.moco.intervals(USER, today(r)) == [(start, None)]
            r.clock.advance(4 * 60)
            end = hhmm(r)
            await r.tap(STAFF, reader="front")
            await eventually(lambda: Signal.CLOCKED_OUT in r.door.signals)
        assert r.moco.intervals(USER, today(r)) == [(start, end)]
        assert r.moco.touches == 2
        assert r.door.signals == [
            Signal.GRANTED,
            Signal.CLOCKED_IN,
            Signal.GRANTED,
            Signal.CLOCKED_OUT,
        ]
        outs = [e for e in logs if e["event"] == "clocked_out"]
        assert outs and outs[0]["presence"].endswith(f"{start}-{end}")
        assert outs[0]["how"] == "touch"
        assert [s for s, _ in rows(r)] == ["delivered", "delivered"]
        # Nothing of it reached Cobot: the card is no member.
        assert not [c for c in r.cobot.requests if c.method == "POST" and c.status == 201]


async def test_a_second_tap_within_min_interval_is_ignored(tmp_path: Path) -> None:
    async with moco_rig(tmp_path) as r:
        r.clock.to_minute_start()
        await r.tap(STAFF)
        await eventually(lambda: r.moco.touches == 1)
        r.clock.advance(45)  # a double tap, 45 s later: not "in and out"
        with capture_logs() as logs:
            await r.tap(STAFF)
        assert any(e["event"] == "moco_tap_ignored" for e in logs)
        r.clock.advance(30)  # 75 s after the first: counts
        await r.tap(STAFF)
        await eventually(lambda: len(rows(r)) == 2 and rows(r)[-1][0] == "delivered")
        assert r.moco.touches == 2
        assert r.moco.discarded == 0


async def test_a_423_is_final_and_the_conflict_is_told_in_words(tmp_path: Path) -> None:
    moco = demo_moco()
    async with moco_rig(tmp_path, moco=moco) as r:
        r.clock.to_minute_start()
        now = r.clock.now().astimezone()
        start = now.replace(hour=0, minute=0) if now.hour == 0 else now.replace(hour=now.hour - 1)
        # Someone entered a presence by hand that runs over the current time.
        moco.add_presence(USER, now.date(), start.strftime("%H:%M"), "23:59")
        with capture_logs() as logs:
            await r.tap(STAFF)
            await eventually(lambda: rows(r) and rows(r)[0][0] == "failed")
        _, reason = rows(r)[0]
        assert reason is not None and "423" in reason
        assert f"it falls inside {now.date()} {start:%H:%M}-23:59" in reason
        assert any(e["event"] == "moco_touch_conflict" for e in logs)
        touches = r.moco.touches
        await r.gateway.moco.records.replayer._round()  # type: ignore[union-attr]
        assert r.moco.touches == touches  # not retried


async def test_an_offline_day_is_replayed_as_intervals_across_midnight(tmp_path: Path) -> None:
    async with moco_rig(tmp_path) as r:
        base = r.clock.now().astimezone()
        # Move to 07:59:50 local on the next day, then tap through the day offline.
        target = base.replace(hour=7, minute=59, second=50, microsecond=0)
        target = target.replace(day=base.day) + (target - target)  # same tz
        delta = (target - base).total_seconds() + 24 * 3600
        r.clock.advance(delta)
        day1 = today(r)
        r.moco.faults.set("error", status=503)
        plan = [
            (11, "08:00"),
            (4 * 3600, "12:00"),
            (3600, "13:00"),
            (4.5 * 3600, "17:30"),
            (4.5 * 3600, "22:00"),
            (4 * 3600, "02:00"),
        ]
        for step, expect in plan:
            r.clock.advance(step)
            assert hhmm(r) == expect
            await r.tap(STAFF)
        day2 = today(r)
        assert r.moco.touches == 0
        r.moco.faults.clear()
        r.gateway.moco.breaker.probe_soon()  # type: ignore[union-attr]
        r.gateway.moco.records.replayer.wake()  # type: ignore[union-attr]
        await eventually(lambda: [s for s, _ in rows(r)] == ["delivered"] * 6, timeout=30)
        assert r.moco.intervals(USER, day1) == [
            ("08:00", "12:00"),
            ("13:00", "17:30"),
            ("22:00", "23:59"),
        ]
        assert r.moco.intervals(USER, day2) == [("00:00", "02:00")]
        assert r.moco.touches == 0, "a replay never touches"
        assert r.moco_requests("POST", "/touch") == 0 or all(
            q.status == 503 for q in r.moco.requests if q.path.endswith("/touch")
        )


async def test_429_is_obeyed_and_everything_arrives(tmp_path: Path) -> None:
    moco = demo_moco()
    moco.rate_limit.default_limit = 3
    moco.rate_limit.window = 3.0
    async with moco_rig(tmp_path, moco=moco, rpm=10_000) as r:
        moco.faults.set("error", status=503)
        r.clock.to_minute_start()
        for _ in range(3):
            await r.tap(STAFF)
            await r.tap(STAFF_OWN_KEY)
            r.clock.advance(120)
        moco.faults.clear()
        r.gateway.moco.breaker.probe_soon()  # type: ignore[union-attr]
        r.gateway.moco.records.replayer.wake()  # type: ignore[union-attr]
        await eventually(lambda: [s for s, _ in rows(r)] == ["delivered"] * 6, timeout=40)
        assert moco.rate_limit.rejected >= 1
        refused = [q for q in moco.requests if q.status == 429]
        for q in refused:
            assert q.retry_after is not None
            later = [x for x in moco.requests if x.at > q.at and x.status != 503]
            assert all(x.at >= q.at + q.retry_after - 0.3 for x in later[:1]), "Retry-After"
        assert len(moco.intervals(USER, today(r))) == 2  # in, out, in: one closed, one open


async def test_a_wrong_key_is_not_retried_in_a_storm_and_never_logged(tmp_path: Path) -> None:
    secret = "not-the-right-key-12345"
    async with moco_rig(tmp_path, keys=MocoKeys(secret, {USER_OWN: OWN_KEY})) as r:
        r.clock.to_minute_start()
        with capture_logs() as logs:
            await r.tap(STAFF)
            await eventually(lambda: r.gateway.moco.client.auth_failed is not None)  # type: ignore[union-attr]
        assert rows(r)[0][0] in ("pending", "sending")
        assert secret not in repr(logs)
        assert r.gateway.status()["moco"]["auth_failed"].startswith("HTTP 401")
        sent = len(r.moco.requests)
        await r.gateway.moco.records.replayer._round()  # type: ignore[union-attr]
        assert len(r.moco.requests) == sent, "paused for a person to fix the key"


async def test_own_keys_act_as_themselves_and_the_account_key_impersonates(
    tmp_path: Path,
) -> None:
    async with moco_rig(tmp_path) as r:
        r.clock.to_minute_start()
        await r.tap(STAFF)
        await r.tap(STAFF_OWN_KEY)
        await eventually(lambda: r.moco.touches == 2)
        touches = [q for q in r.moco.requests if q.path.endswith("/touch")]
        assert {(q.user_id, q.impersonated) for q in touches} == {
            (USER, True),
            (USER_OWN, False),
        }
        assert r.moco.intervals(USER, today(r)) == [(hhmm(r), None)]
        assert r.moco.intervals(USER_OWN, today(r)) == [(hhmm(r), None)]
        # MOCO counted the touch when it answered; the gateway learns of it just after.
        await eventually(lambda: len(r.gateway.status()["moco"]["clocked_in_today"]) == 2)
        status = r.gateway.status()["moco"]["clocked_in_today"]
        assert {s["user_id"] for s in status} == {USER, USER_OWN}
        names = {s["user_id"]: s["name"] for s in status}
        assert names[USER] == "******oe" and names[USER_OWN] == "**********er"  # redacted


async def test_answers_lost_after_moco_did_the_work_are_not_written_twice(
    tmp_path: Path,
) -> None:
    async with moco_rig(tmp_path) as r:
        r.clock.to_minute_start()
        start = hhmm(r)
        # The touch lands, its answer is lost: the tap stays "sending", then the replay
        # finds the presence it made and writes nothing.
        r.moco.faults.set("error", status=502, commit=True, count=1)
        await r.tap(STAFF)
        await eventually(lambda: rows(r) and rows(r)[0][0] == "sending")
        r.gateway.moco.breaker.probe_soon()  # type: ignore[union-attr]
        r.gateway.moco.records.replayer.wake()  # type: ignore[union-attr]
        await eventually(lambda: rows(r)[0][0] == "delivered", timeout=15)
        assert r.moco.touches == 1
        assert r.moco_requests("POST") == 1 and r.moco_requests("PUT") == 0
        # Offline taps, replayed: the POST lands, its answer is lost; no second POST.
        r.moco.faults.set("error", status=503)
        r.clock.advance(5 * 60)
        end = hhmm(r)
        await r.tap(STAFF)
        r.clock.advance(5 * 60)
        again = hhmm(r)
        await r.tap(STAFF)
        r.moco.fault_methods = {"POST", "PUT"}
        r.moco.faults.set("error", status=502, commit=True, count=2)
        r.gateway.moco.breaker.probe_soon()  # type: ignore[union-attr]
        r.gateway.moco.records.replayer.wake()  # type: ignore[union-attr]
        await eventually(lambda: [s for s, _ in rows(r)] == ["delivered"] * 3, timeout=30)
        assert r.moco.intervals(USER, today(r)) == [(start, end), (again, None)]
        assert r.moco.touches == 1, "a replay never touches"
        lost = [(q.method, q.status) for q in r.moco.requests if q.status == 502]
        assert ("PUT", 502) in lost and lost.count(("POST", 502)) == 2, lost
