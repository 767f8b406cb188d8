"""The promise under real faults (issue 10): nothing lost, nothing billed twice, nobody
let in by mistake. Each test is one case of a kind; it asserts the right value."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from gateway.clock import SystemClock
from gateway.errors import DoorError, StorageError
from gateway.model import ClockQuality, Direction, Outcome, RecordKind, Signal
from gateway.outbox import Outbox, State
from gateway.readers.base import make_tap
from gateway.sim.seed import ADA, ALAN, GRACE, NFC_TOKEN, NO_PASS_TOKEN, RDM_TOKEN
from gateway.store import DB_NAME
from tests.harness import RecordingDoor, eventually, rig

pytestmark = pytest.mark.usefixtures("no_blocking")


class SlowFailingDoor(RecordingDoor):
    """A door whose command runs past its timeout and fails (DoorError after a while)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.started = asyncio.Event()

    async def open(self) -> None:
        self.started.set()
        await asyncio.sleep(self.delay)
        raise DoorError("door command ran past its timeout (killed)")


class FakeClock(SystemClock):
    """Wall clock off by ``offset`` until ``sync`` sets it right; a chosen boot id."""

    def __init__(self, offset: timedelta, boot: str = "boot-1") -> None:
        super().__init__(boot_id=boot)
        self.offset = offset
        self.synced = False
        self.boot = boot

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def boot_id(self) -> str:
        return self.boot

    def synchronized(self) -> bool:
        return self.synced

    def reference_now(self) -> datetime | None:
        return self.now() if self.synced else None

    def observe(self, reference: datetime) -> None:
        pass  # only ``sync`` sets this clock right

    def sync(self) -> None:
        self.offset, self.synced = timedelta(0), True


# --- case 1: the door and the bill agree ---------------------------------------------


async def test_slow_failing_door_bills_nobody_even_when_the_drainer_runs_meanwhile(
    tmp_path: Path,
) -> None:
    door = SlowFailingDoor(delay=1.0)
    async with rig(tmp_path, door=door) as r:
        task = asyncio.create_task(r.tap(RDM_TOKEN))
        await door.started.wait()
        r.gateway.drainer.wake()  # a drain round while the door is still moving
        await asyncio.sleep(0.5)
        decision = await task
        assert decision.outcome is Outcome.DOOR_FAILED and not decision.opened
        await asyncio.sleep(0.3)
        assert r.space.check_ins_of(ADA) == []  # no pass used
        assert r.gateway.outbox.depth == 0
        assert await r.gateway.outbox.list(include_done=True) == []
        assert r.gateway.attendance.until(ADA) is None


async def test_held_record_found_at_start_is_delivered_once(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        tap = make_tap("front", RDM_TOKEN, Direction.IN)
        member = r.gateway.cache.lookup(RDM_TOKEN)
        await r.gateway.records.hold(RecordKind.CHECK_IN, tap, member)  # stopped mid-door
    with structlog.testing.capture_logs() as logs:
        async with rig(tmp_path) as r:
            # The door's outcome is unknown: one check-in a day is billed at most once,
            # so delivering costs nothing if the member tapped again, and loses no visit.
            await eventually(lambda: len(r.space.check_ins_of(ADA)) == 1)
            await r.tap(RDM_TOKEN)
            await asyncio.sleep(0.3)
            assert len(r.space.check_ins_of(ADA)) == 1 and r.space.doubled() == {}
    assert any(e["event"] == "door_outcome_unknown" for e in logs)


# --- case 2: a tap's time is only as good as the clock --------------------------------


async def test_tap_on_unsynced_clock_is_corrected_after_sync_not_billed_on_the_wrong_day(
    tmp_path: Path,
) -> None:
    clock = FakeClock(offset=-timedelta(days=400))  # fake-hwclock's old time
    async with rig(tmp_path, clock=clock, decision_deadline=0.3) as r:
        r.space.faults.set("error", status=503)
        d = await r.tap(RDM_TOKEN)
        assert d.outcome is Outcome.OPENED_OFFLINE
        assert d.tap.clock is ClockQuality.UNSYNCED
        r.space.faults.clear()
        r.gateway.breaker.probe_soon()
        r.gateway.drainer.wake()
        await asyncio.sleep(1.0)
        assert r.space.check_ins_of(ADA) == []  # not sent while the clock is wrong
        [entry] = await r.gateway.outbox.list()
        assert "synchronised" in (entry.last_error or "")
        clock.sync()
        await r.gateway.outbox.retry(entry.id)  # hurry the deferred attempt
        r.gateway.drainer.wake()
        await eventually(lambda: len(r.space.check_ins_of(ADA)) == 1)
        [check_in] = r.space.check_ins_of(ADA)
        assert check_in.valid_from.date() == datetime.now(UTC).date()  # today, not 400 days ago
        [entry] = await r.gateway.outbox.list(include_done=True)
        assert entry.clock is ClockQuality.CORRECTED
        assert abs(entry.tapped_at - d.tap.at - timedelta(days=400)) < timedelta(seconds=5)


async def test_a_check_in_of_the_wrong_clock_day_does_not_count_as_delivered(
    tmp_path: Path,
) -> None:
    # The Pi booted with yesterday's time; Ada really was in yesterday too.
    clock = FakeClock(offset=-timedelta(days=1))
    async with rig(tmp_path, clock=clock, decision_deadline=0.3) as r:
        await r.gateway.client.create_work_session(
            ADA, valid_from=datetime.now(UTC) - timedelta(days=1)
        )
        r.space.faults.set("error", status=503)
        await r.tap(RDM_TOKEN)  # today's visit, read as yesterday
        [entry] = await r.gateway.outbox.list()
        await r.gateway.outbox.mark_sending(entry.id)  # an attempt whose answer was lost
        r.space.faults.clear()
        clock.sync()
        await r.gateway.outbox.retry(entry.id)
        r.gateway.breaker.probe_soon()
        r.gateway.drainer.wake()
        today = datetime.now(UTC).date()
        # Before: yesterday's check-in "covered" the tap and today's visit vanished.
        await eventually(
            lambda: (
                [c.valid_from.date() for c in r.space.check_ins_of(ADA)]
                == [today - timedelta(days=1), today]
            ),
            timeout=10,
        )
        [entry] = await r.gateway.outbox.list(include_done=True)
        assert entry.state is State.DELIVERED and entry.clock is ClockQuality.CORRECTED


async def test_a_tap_whose_day_cannot_be_known_is_recorded_as_of_delivery(
    tmp_path: Path,
) -> None:
    clock = FakeClock(offset=-timedelta(days=400), boot="earlier-boot")
    async with rig(tmp_path, clock=clock, decision_deadline=0.3) as r:
        r.space.faults.set("error", status=503)
        await r.tap(RDM_TOKEN)  # read on a wrong clock, in a boot that then ended
        r.space.faults.clear()
        clock.boot = "this-boot"
        clock.sync()
        [entry] = await r.gateway.outbox.list()
        await r.gateway.outbox.retry(entry.id)
        r.gateway.breaker.probe_soon()
        r.gateway.drainer.wake()
        await eventually(lambda: len(r.space.check_ins_of(ADA)) == 1, timeout=10)
        [check_in] = r.space.check_ins_of(ADA)
        assert check_in.valid_from.date() == datetime.now(UTC).date()  # never back-dated
        [entry] = await r.gateway.outbox.list(include_done=True)
        assert entry.clock is ClockQuality.NOW


class SkewedClock(SystemClock):
    """Three hours behind, and no NTP ever: only the API's ``Date`` can tell the time."""

    def now(self) -> datetime:
        return datetime.now(UTC) - timedelta(hours=3)

    def refresh(self) -> bool:
        return False


async def test_a_clock_hours_off_without_ntp_is_corrected_by_the_apis_date(
    tmp_path: Path,
) -> None:
    clock = SkewedClock(boot_id="boot-1")
    async with rig(tmp_path, clock=clock, decision_deadline=0.3) as r:
        r.space.faults.set("error", status=503)  # answers (with a Date), but no check-in
        d = await r.tap(RDM_TOKEN)
        assert d.outcome is Outcome.OPENED_OFFLINE and d.tap.clock is ClockQuality.UNSYNCED
        assert not clock.synchronized()  # 3 h off: the API's Date does not vouch for it
        r.space.faults.clear()
        r.gateway.breaker.probe_soon()
        r.gateway.drainer.wake()
        await eventually(lambda: len(r.space.check_ins_of(ADA)) == 1, timeout=10)
        [entry] = await r.gateway.outbox.list(include_done=True)
        assert entry.clock is ClockQuality.CORRECTED
        assert abs(entry.tapped_at - datetime.now(UTC)) < timedelta(seconds=30)


# --- case 3: another process holds the database ---------------------------------------


async def fill_outbox(outbox: Outbox) -> None:
    """SQLite's own "database or disk is full", on the daemon's connection: the file may
    not grow, and the outbox's pages are filled with delivered rows of a tap's size."""
    db = outbox._db
    pages = await db.fetchone("PRAGMA page_count")
    assert pages is not None
    await db.execute(f"PRAGMA max_page_count = {pages[0]}")
    for _ in range(10_000):
        try:
            await outbox.add(
                RecordKind.CHECK_IN,
                token="FILLER0000",
                membership_id="m-filler",
                reader="front",
                tapped_at=datetime.now(UTC),
                state=State.DELIVERED,
            )
        except StorageError:
            return
    raise AssertionError("the database never filled up")


def _hold_write_lock(path: Path, seconds: float, held: threading.Event) -> None:
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    held.set()
    threading.Event().wait(seconds)
    conn.execute("ROLLBACK")
    conn.close()


async def test_locked_database_neither_holds_the_door_nor_loses_the_check_in(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        db_path = tmp_path / "state" / DB_NAME
        held = threading.Event()
        locker = threading.Thread(target=_hold_write_lock, args=(db_path, 3.0, held))
        locker.start()
        await asyncio.to_thread(held.wait)
        d = await r.tap(RDM_TOKEN)
        lock_still_held = locker.is_alive()
        assert d.outcome is Outcome.OPENED_ONLINE and d.opened
        assert lock_still_held  # the door did not wait for the other process
        assert r.gateway.decider.storage_error is not None
        # Delivered directly while the database was locked...
        await eventually(lambda: len(r.space.check_ins_of(ADA)) == 1)
        await asyncio.to_thread(locker.join)
        # ...and recorded (as delivered, never sent again) once it was free.
        await eventually(lambda: r.gateway.records.unsaved == 0, timeout=10)
        [entry] = await r.gateway.outbox.list(include_done=True)
        assert entry.state is State.DELIVERED
        assert r.gateway.attendance.until(ADA) is not None
        await asyncio.sleep(0.5)
        assert len(r.space.check_ins_of(ADA)) == 1
        assert r.space.doubled() == {}


async def test_full_disk_online_still_delivers_and_marks_only_what_was_delivered(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        db = r.gateway.outbox._db
        await fill_outbox(r.gateway.outbox)
        d = await r.tap(RDM_TOKEN)
        assert d.opened
        assert "full" in (r.gateway.decider.storage_error or "")
        await eventually(lambda: len(r.space.check_ins_of(ADA)) == 1)  # sent anyway
        await eventually(lambda: r.gateway.attendance.until(ADA) is not None)
        await db.execute("PRAGMA max_page_count = 1073741823")
        await eventually(lambda: r.gateway.records.unsaved == 0, timeout=10)
        [entry] = [
            e for e in await r.gateway.outbox.list(include_done=True) if e.token == RDM_TOKEN
        ]
        assert entry.state is State.DELIVERED


async def test_full_disk_offline_keeps_the_check_in_in_memory_and_sends_it_later(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, decision_deadline=0.3) as r:
        r.space.faults.set("error", status=503)
        db = r.gateway.outbox._db
        await fill_outbox(r.gateway.outbox)
        d = await r.tap(RDM_TOKEN)
        assert d.outcome is Outcome.OPENED_OFFLINE and d.opened
        # Not stored: not marked checked in, so the next tap is decided again...
        assert r.gateway.attendance.until(ADA) is None
        assert r.gateway.records.unsaved == 1
        await db.execute("PRAGMA max_page_count = 1073741823")
        r.space.faults.clear()
        await eventually(lambda: r.gateway.records.unsaved == 0, timeout=10)
        r.gateway.breaker.probe_soon()
        r.gateway.drainer.wake()
        # ...and the check-in refused by the full disk is sent after all.
        await eventually(lambda: len(r.space.check_ins_of(ADA)) == 1, timeout=10)


# --- case 5: a refusal is not an outage -------------------------------------------------


async def test_a_missing_scope_defers_one_entry_without_opening_the_breaker_or_blocking(
    tmp_path: Path,
) -> None:
    from gateway.sim.seed import LIMITED_TOKEN

    # The token may check in (scope checkin) but not replay with valid_from (scope write).
    async with rig(tmp_path, token=LIMITED_TOKEN, decision_deadline=0.5) as r:
        await r.gateway.outbox.add(
            RecordKind.CHECK_IN,
            token=RDM_TOKEN,
            membership_id=ADA,
            reader="front",
            tapped_at=datetime.now(UTC) - timedelta(hours=2),  # replayed with valid_from
        )
        await r.gateway.outbox.add(
            RecordKind.CHECK_IN,
            token=NFC_TOKEN,
            membership_id=GRACE,
            reader="front",
            tapped_at=datetime.now(UTC),
        )
        r.gateway.drainer.wake()
        await eventually(lambda: len(r.space.check_ins_of(GRACE)) == 1)  # not blocked
        assert not r.gateway.breaker.is_open
        assert r.space.check_ins_of(ADA) == []  # the 403'd replay waits for a person
        # A member Cobot refuses is refused online meanwhile, not let in offline.
        d = await r.tap(NO_PASS_TOKEN)
        assert d.outcome is Outcome.REFUSED and not d.opened


async def test_member_refused_online_is_not_let_in_offline_the_same_day(tmp_path: Path) -> None:
    async with rig(tmp_path, decision_deadline=0.3) as r:
        d = await r.tap(NO_PASS_TOKEN)
        assert d.outcome is Outcome.REFUSED
        r.space.faults.set("error", status=503)
        offline = await r.tap(NO_PASS_TOKEN)
        assert offline.outcome is Outcome.DENIED_OFFLINE and not offline.opened
        assert "refused earlier today" in (offline.reason or "")
        assert r.space.check_ins_of(ALAN) == []
        assert r.door.signals.count(Signal.REFUSED) >= 1


# --- case 6: a crash in one part does not stop the daemon ------------------------------


async def test_a_crashing_part_restarts_and_the_doors_keep_deciding(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        gw = r.gateway
        crashes = {"sync": 0, "drain": 0}
        real_sync, real_round = gw.sync.sync_once, gw.drainer._round

        async def bad_sync() -> float:
            crashes["sync"] += 1
            if crashes["sync"] == 1:
                raise RuntimeError("injected sync fault")
            return await real_sync()

        async def bad_round() -> float:
            crashes["drain"] += 1
            if crashes["drain"] == 1:
                raise RuntimeError("injected drain fault")
            return await real_round()

        gw.sync.sync_once = bad_sync  # type: ignore[method-assign]
        gw.drainer._round = bad_round  # type: ignore[method-assign]
        gw.sync.request()
        gw.drainer.wake()

        def bad_hook(decision: object) -> None:
            raise RuntimeError("injected hook fault")

        gw.decider._hooks.append(bad_hook)
        with structlog.testing.capture_logs() as logs:
            await eventually(lambda: gw.runner.states["delivery"].restarts >= 1, timeout=10)
            await eventually(lambda: gw.runner.states["token-sync"].restarts >= 1, timeout=10)
            d = await r.tap(RDM_TOKEN)
        assert d.outcome is Outcome.OPENED_ONLINE and d.opened
        await eventually(lambda: len(r.space.check_ins_of(ADA)) == 1, timeout=10)
        events = [e["event"] for e in logs]
        assert events.count("part_crashed") == 2
        assert "decision_hook_failed" in events
        await eventually(lambda: gw.runner.states["delivery"].running, timeout=5)
        assert gw.runner.states["token-sync"].running
