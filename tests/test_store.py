"""The SQLite state: token cache, checked-in memory, outbox states."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.attendance import Attendance
from gateway.cache import TokenCache
from gateway.errors import StorageError
from gateway.model import Membership, RecordKind, TokenRecord
from gateway.outbox import Outbox, OutboxFull, State
from gateway.store import DB_NAME, open_db

ADA = Membership("m-ada", "Ada")
BOB = Membership("m-bob", "Bob")
T0 = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)


async def test_cache_survives_restart_and_sync_replaces(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    cache = TokenCache(db)
    await cache.load()
    assert await cache.replace_all([TokenRecord("A1", ADA), TokenRecord("B1", BOB)]) == (2, 0)
    attendance = Attendance(db)
    await attendance.checked_in(ADA.id, T0 + timedelta(hours=16))
    await db.close()

    db = await open_db(tmp_path)
    cache = TokenCache(db)
    await cache.load()
    attendance = Attendance(db)
    await attendance.load()
    assert cache.lookup("A1") == ADA and cache.lookup("B1") == BOB
    assert attendance.until(ADA.id, T0) == T0 + timedelta(hours=16)
    assert attendance.until(ADA.id, T0 + timedelta(hours=17)) is None
    # Bob's token removed upstream: it stops working after the sync.
    assert await cache.replace_all([TokenRecord("A1", ADA)]) == (0, 1)
    assert cache.lookup("B1") is None
    await attendance.checked_out(ADA.id)
    assert attendance.until(ADA.id, T0) is None
    await db.close()


async def test_a_check_out_is_remembered_for_the_day_across_a_restart(tmp_path: Path) -> None:
    """Presence readers ask Attendance whether a member was checked out today (one
    check-in per member per day at Cobot: a second uses a second time pass)."""
    from gateway.attendance import end_of_local_day

    db = await open_db(tmp_path)
    attendance = Attendance(db)
    await attendance.load()
    await attendance.checked_in(ADA.id, T0 + timedelta(hours=16))
    assert not attendance.checked_out_today(ADA.id, T0)
    await attendance.checked_out(ADA.id, T0 + timedelta(hours=2))
    assert attendance.until(ADA.id, T0 + timedelta(hours=3)) is None
    assert attendance.checked_out_today(ADA.id, T0 + timedelta(hours=3))
    await db.close()

    db = await open_db(tmp_path)
    attendance = Attendance(db)
    await attendance.load()
    later = T0 + timedelta(hours=3)
    assert attendance.checked_out_today(ADA.id, later)
    tomorrow = end_of_local_day(later) + timedelta(hours=1)
    assert not attendance.checked_out_today(ADA.id, tomorrow)
    # Checked in again on purpose (a card): no longer "checked out today".
    await attendance.checked_in(ADA.id, T0 + timedelta(hours=16))
    assert not attendance.checked_out_today(ADA.id, later)
    await attendance.checked_out(BOB.id, later)
    await attendance.prune(tomorrow)  # the day is over: the row goes
    assert await db.fetchall("SELECT key FROM meta WHERE key LIKE 'checked_out:%'") == []
    await db.close()


async def test_a_check_in_delivered_after_a_later_check_out_does_not_mark_in_again(
    tmp_path: Path,
) -> None:
    """Offline: Ada taps in at 9 (queued), out at 17; Cobot is back at 17:05 and the
    queued 9 o'clock check-in is delivered. She left: she is not "checked in" again, and
    her phone on the Wi-Fi is not checked in a second time (checked out today)."""
    db = await open_db(tmp_path)
    attendance = Attendance(db)
    await attendance.load()
    nine, five = T0 + timedelta(hours=1), T0 + timedelta(hours=9)
    await attendance.checked_out(ADA.id, five)
    await attendance.checked_in(ADA.id, T0 + timedelta(hours=16), tapped_at=nine)
    assert attendance.until(ADA.id, five + timedelta(minutes=5)) is None
    assert attendance.checked_out_today(ADA.id, five + timedelta(minutes=5))
    # A check-in tapped after the check-out is a new visit.
    await attendance.checked_in(
        ADA.id, T0 + timedelta(hours=16), tapped_at=five + timedelta(hours=1)
    )
    assert attendance.until(ADA.id, five + timedelta(hours=1)) is not None
    assert not attendance.checked_out_today(ADA.id, five + timedelta(hours=1))
    await db.close()


async def test_outbox_lifecycle(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    outbox = Outbox(db, max_entries=3)
    await outbox.load()
    a = await outbox.add(
        RecordKind.CHECK_IN, token="A1", membership_id=ADA.id, reader="front", tapped_at=T0
    )
    b = await outbox.add(
        RecordKind.CHECK_OUT, token="B1", membership_id=BOB.id, reader="exit", tapped_at=T0
    )
    assert outbox.depth == 2
    head = await outbox.head()
    assert [e.id for e in head] == [a, b]
    assert head[0].tapped_at == T0 and head[0].state is State.PENDING

    await outbox.mark_sending(a)
    await outbox.defer(a, "timeout", 0, outcome_unknown=True)
    entry = await outbox.get(a)
    assert entry is not None and entry.state is State.SENDING and entry.attempts == 1
    await outbox.mark_delivered(a, "ci-1")
    await outbox.mark_failed(b, "membership not confirmed")
    assert outbox.depth == 0
    assert (await outbox.get(b)).last_error == "membership not confirmed"  # type: ignore[union-attr]
    assert await outbox.retry(b)
    assert outbox.depth == 1  # counted at once (the admin page and status show it)
    await outbox.load()
    assert outbox.depth == 1
    assert await outbox.mark_dropped(b, "test")
    assert not await outbox.mark_dropped(a, "test")  # delivered entries are history
    stats = await outbox.stats()
    assert stats["depth"] == 0 and stats["delivered"] == 1
    await db.close()


async def test_outbox_bound(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    outbox = Outbox(db, max_entries=2)
    await outbox.load()
    for _ in range(2):
        await outbox.add(
            RecordKind.CHECK_IN, token="A1", membership_id=None, reader="r", tapped_at=T0
        )
    with pytest.raises(OutboxFull):
        await outbox.add(
            RecordKind.CHECK_IN, token="A1", membership_id=None, reader="r", tapped_at=T0
        )
    assert len(await outbox.head()) == 2  # nothing queued was touched
    await db.close()


async def test_garbage_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="not a usable gateway database"):
        await open_db(tmp_path)


async def test_wal_lets_a_second_connection_read_while_writing(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    outbox = Outbox(db, max_entries=10)
    await outbox.add(RecordKind.CHECK_IN, token="A1", membership_id=None, reader="r", tapped_at=T0)
    with sqlite3.connect(tmp_path / DB_NAME) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 1
    await db.close()


async def test_lanes_let_the_urgent_go_first_and_survive_cancellation() -> None:
    import asyncio

    from gateway.store import Lanes

    lanes = Lanes()
    order: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with lanes.hold():
            await release.wait()

    async def take(name: str, urgent: bool) -> None:
        async with lanes.hold(urgent=urgent):
            order.append(name)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    slow = [asyncio.create_task(take(f"n{i}", False)) for i in range(3)]
    doomed = asyncio.create_task(take("cancelled", True))
    await asyncio.sleep(0)
    urgent = asyncio.create_task(take("urgent", True))
    await asyncio.sleep(0)
    doomed.cancel()
    release.set()
    await asyncio.gather(first, urgent, *slow)
    assert order == ["urgent", "n0", "n1", "n2"]
    with pytest.raises(asyncio.CancelledError):
        await doomed
    # Cancelled just as the lock was handed over: the lock passes on, not lost.
    async with lanes.hold():
        handed = asyncio.create_task(take("late", False))
        await asyncio.sleep(0)
    handed.cancel()
    await asyncio.gather(handed, return_exceptions=True)
    await asyncio.wait_for(take("after", True), 1)
    assert order[-1] == "after"
