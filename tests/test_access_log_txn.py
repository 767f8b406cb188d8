"""The access log rides with the tap's record: same transaction, no commit of its own.

Issue 16, item 4: "written in the same transaction as the decision's record so it costs
no extra fsync on the tap path". Checked on SQLite's own statement trace (the real
connection), not on a fake: the tap path commits as often with the admin page as
without it, and the access-log row is inside the transaction that releases the record.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.admin.accesslog import Query
from gateway.model import Outcome
from gateway.sim.seed import RDM_TOKEN
from gateway.store import MAX_ATTACHED, open_db
from tests.admin_support import admin_rig
from tests.harness import rig

# The admin rig writes its password file synchronously, so only the database tests
# run under blockbuster.
no_blocking = pytest.mark.usefixtures("no_blocking")


def transactions(trace: list[str]) -> Iterator[list[str]]:
    """Group traced statements into write transactions (explicit or autocommit)."""
    current: list[str] | None = None
    for raw in trace:
        sql = " ".join(raw.split())
        head = sql.split(" ", 1)[0].upper()
        if head == "BEGIN":
            current = []
        elif head in ("COMMIT", "ROLLBACK") and current is not None:
            yield current
            current = None
        elif current is not None:
            current.append(sql)
        elif head in ("INSERT", "UPDATE", "DELETE"):
            yield [sql]  # autocommit: a transaction of its own


async def traced_tap(gateway, tap) -> list[list[str]]:  # type: ignore[no-untyped-def]
    trace: list[str] = []
    conn = gateway.db._conn  # the real aiosqlite connection (test-only look inside)
    await conn.set_trace_callback(trace.append)
    try:
        decision = await tap()
    finally:
        await conn.set_trace_callback(None)
    assert decision.outcome is Outcome.OPENED_ONLINE
    return [t for t in transactions(trace) if not all(s.startswith("PRAGMA") for s in t)]


def writes(txns: list[list[str]]) -> list[list[str]]:
    return [[s for s in t if not s.startswith("PRAGMA")] for t in txns]


async def test_the_access_log_row_is_committed_with_the_records_release(tmp_path: Path) -> None:
    # A live tap: hold (one durable insert), door, release (+ the log row).
    async with admin_rig(tmp_path / "with") as with_admin:
        assert with_admin.gateway.admin is not None
        txns = writes(await traced_tap(with_admin.gateway, lambda: with_admin.tap(RDM_TOKEN)))
    async with rig(tmp_path / "without") as plain:
        plain_txns = writes(await traced_tap(plain.gateway, lambda: plain.tap(RDM_TOKEN)))
    # As many commits with the page as without (hold; release; who is in today).
    assert len(txns) == len(plain_txns) == 3, (txns, plain_txns)
    hold, release, active = txns
    assert hold[0].startswith("INSERT INTO outbox")
    assert release[0].startswith("UPDATE outbox SET state = 'pending'")
    assert any(s.startswith("INSERT INTO access_log") for s in release)
    assert active[0].startswith("INSERT OR REPLACE INTO active")
    assert not any("access_log" in s for t in plain_txns for s in t)


async def test_a_refusal_is_logged_without_a_commit_on_the_tap_path(tmp_path: Path) -> None:
    async with admin_rig(tmp_path) as r:
        assert r.gateway.admin is not None
        decision = await r.tap("FFFFFFFF99")  # unknown to Cobot
        assert decision.outcome is Outcome.REFUSED
        assert r.gateway.db.attached == 1  # waits for a write to ride with
        rows = await r.gateway.admin.access_log.search(Query())
        assert [row["outcome"] for row in rows] == ["refused"]
        assert r.gateway.db.attached == 0


@no_blocking
async def test_an_attached_row_that_fails_never_undoes_the_write_it_rides_with(
    tmp_path: Path,
) -> None:
    db = await open_db(tmp_path)
    try:
        await db.execute("CREATE TABLE t (x INTEGER NOT NULL)")
        db.attach("INSERT INTO no_such_table VALUES (1)")
        db.attach("INSERT INTO t VALUES (2)")
        await db.execute("INSERT INTO t VALUES (1)")
        assert await db.fetchall("SELECT x FROM t ORDER BY x") == [(1,), (2,)]
        assert db.attached_lost == 1 and db.attached == 0
    finally:
        await db.close()


@no_blocking
async def test_attached_rows_wait_when_the_write_they_ride_with_fails(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    try:
        await db.execute("CREATE TABLE t (x INTEGER NOT NULL)")
        db.attach("INSERT INTO t VALUES (7)")
        with pytest.raises(sqlite3.IntegrityError):
            await db.execute("INSERT INTO t VALUES (NULL)")
        assert db.attached == 1  # not lost with the failed write, not committed either
        assert await db.fetchall("SELECT x FROM t") == []
        await db.flush_attached()
        assert await db.fetchall("SELECT x FROM t") == [(7,)]
    finally:
        await db.close()


@no_blocking
async def test_attached_rows_are_bounded(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    try:
        await db.execute("CREATE TABLE t (x INTEGER NOT NULL)")
        for i in range(MAX_ATTACHED + 5):
            db.attach("INSERT INTO t VALUES (?)", (i,))
        assert db.attached == MAX_ATTACHED and db.attached_lost == 5
        await db.flush_attached()
        rows = await db.fetchall("SELECT min(x), count(*) FROM t")
        assert rows == [(5, MAX_ATTACHED)]  # the oldest went first
    finally:
        await db.close()


async def test_the_access_log_flushes_by_itself(tmp_path: Path) -> None:
    async with admin_rig(tmp_path) as r:
        await r.tap("FFFFFFFF99")
        async with asyncio.timeout(5):
            while r.gateway.db.attached:
                await asyncio.sleep(0.05)
        rows = await r.gateway.db.fetchall("SELECT outcome FROM access_log")
        assert rows == [("refused",)]
