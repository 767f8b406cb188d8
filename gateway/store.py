"""The gateway's SQLite database in the state directory: one file, WAL, one connection.

Tables: ``tokens`` (the token cache), ``active`` (members checked in today, so a
re-entry needs no API call) and ``outbox`` (check-ins and check-outs waiting for the
API). WAL lets ``checkin-gateway queue``/``status`` read and edit while the daemon runs;
``synchronous=FULL`` because an outbox row must survive a power cut right after the door
opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from gateway.errors import StorageError

log = structlog.get_logger(__name__)

DB_NAME = "gateway.sqlite"
# How long one statement waits for another process's write lock (the `queue` command, a
# backup, the sqlite3 shell). The daemon waits little: a person may be at the door, and
# every writer of its own retries (the drainer, the sync) or keeps the change in memory
# (the decision, see records/cobot.py). The CLI, which a person runs, waits longer.
DAEMON_BUSY_TIMEOUT_MS = 200
CLI_BUSY_TIMEOUT_MS = 5000
# Rows riding with the next write (``Database.attach``): a bound on what a database that
# refuses every write for a long time can hold in memory.
MAX_ATTACHED = 1000
BUSY_TIMEOUT_MS = CLI_BUSY_TIMEOUT_MS

_SCHEMA = [
    # version 1
    """
    CREATE TABLE tokens (
        token TEXT PRIMARY KEY,
        membership_id TEXT NOT NULL,
        membership_name TEXT NOT NULL DEFAULT ''
    ) WITHOUT ROWID;
    CREATE TABLE active (
        membership_id TEXT PRIMARY KEY,
        valid_until TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,                 -- check_in | check_out
        token TEXT,
        membership_id TEXT,
        reader TEXT NOT NULL,
        tapped_at TEXT NOT NULL,            -- ISO 8601 UTC, what the member is billed from
        state TEXT NOT NULL,                -- pending | sending | delivered | failed | dropped
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL DEFAULT 0,  -- unix time
        last_error TEXT,
        result_id TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX outbox_open ON outbox (state, id) WHERE state IN ('pending', 'sending');
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    """,
    # version 2: which backend an entry belongs to, and how far its tap time is trusted
    """
    ALTER TABLE outbox ADD COLUMN backend TEXT NOT NULL DEFAULT 'cobot';
    ALTER TABLE outbox ADD COLUMN clock TEXT NOT NULL DEFAULT 'synced';
    ALTER TABLE outbox ADD COLUMN boot_id TEXT;
    ALTER TABLE outbox ADD COLUMN tapped_mono REAL;
    """,
    # version 3: `queue drop` keeps the row as state 'dropped', saying who and when.
    """
    ALTER TABLE outbox ADD COLUMN dropped_by TEXT;
    ALTER TABLE outbox ADD COLUMN dropped_at REAL;
    """,
]


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
        or "disk is full" in str(exc)
        or "disk I/O error" in str(exc)
    )


@dataclass(frozen=True, slots=True)
class Written:
    rowcount: int
    lastrowid: int | None


class Lanes:
    """A lock whose urgent waiters go before the others.

    The tap path's outbox commit is urgent: a person is at the door. Delivery
    bookkeeping, syncs and housekeeping wait behind it rather than in front of it, so a
    tap waits for at most the one statement already running.
    """

    __slots__ = ("_busy", "_waiting")

    def __init__(self) -> None:
        self._busy = False
        self._waiting: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())

    @asynccontextmanager
    async def hold(
        self, *, urgent: bool = False, budget: float | None = None
    ) -> AsyncIterator[None]:
        """Hold the lock; ``budget`` bounds the wait for it (TimeoutError)."""
        async with asyncio.timeout(budget):
            await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        if not self._busy:
            self._busy = True
            return
        queue = self._waiting[0 if urgent else 1]
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # handed the lock just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    queue.remove(fut)
            raise

    def _release(self) -> None:
        for queue in self._waiting:
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)  # handed over: the lock stays held
                    return
        self._busy = False


class Database:
    """The one aiosqlite connection, shared by the token cache and the outbox.

    A connection has one transaction at a time: a multi-statement transaction (a token
    sync) must not interleave with another coroutine's statements, so every statement
    and every transaction takes the same lock (with a fast lane for the tap path).
    """

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = Lanes()
        self.path = path
        self._attached: deque[tuple[str, Sequence[Any]]] = deque()
        self.attached_lost = 0

    def attach(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Queue a row that rides in the next write's transaction (no commit of its own).

        For bookkeeping written right after a record (the access log): the decision
        attaches it just before releasing or discarding the record, so it is committed
        with that record, at no extra commit or fsync on the tap path. A row that fails
        (a missing table, a constraint) is dropped alone, under a savepoint, never
        undoing the write it rides with; ``flush_attached`` writes what no write took.
        Bounded: beyond ``MAX_ATTACHED`` the oldest row is dropped and counted."""
        if len(self._attached) >= MAX_ATTACHED:
            self._attached.popleft()
            self.attached_lost += 1
        self._attached.append((sql, params))

    @property
    def attached(self) -> int:
        return len(self._attached)

    async def flush_attached(self) -> None:
        """Write attached rows that no other write took, without an fsync."""
        if self._attached:
            async with self._lock.hold():
                await self._with_attached(None, (), durable=False)

    async def execute(
        self,
        sql: str,
        params: Sequence[Any] = (),
        *,
        urgent: bool = False,
        budget: float | None = None,
        durable: bool = True,
    ) -> Written:
        """One statement. ``budget`` bounds the wait for our own lock (TimeoutError); the
        wait for another process's lock is bounded by the busy timeout (sqlite3.Error:
        "database is locked"). ``durable=False`` commits without an fsync (WAL with
        ``synchronous=NORMAL``: a power cut may undo it, never corrupt it; the next
        durable commit makes it durable too), for changes whose loss is harmless."""
        async with self._lock.hold(urgent=urgent, budget=budget):
            if self._attached:
                return await self._with_attached(sql, params, durable=durable)
            if durable:
                cur = await self._conn.execute(sql, params)
                return Written(cur.rowcount, cur.lastrowid)
            await self._conn.execute("PRAGMA synchronous = NORMAL")
            try:
                cur = await self._conn.execute(sql, params)
            finally:
                await self._conn.execute("PRAGMA synchronous = FULL")
            return Written(cur.rowcount, cur.lastrowid)

    async def _with_attached(
        self, sql: str | None, params: Sequence[Any], *, durable: bool
    ) -> Written:
        """``sql`` and the attached rows in one transaction (the lock is held)."""
        rows = list(self._attached)
        self._attached.clear()
        if not durable:
            await self._conn.execute("PRAGMA synchronous = NORMAL")
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                written = Written(0, None)
                if sql is not None:
                    cur = await self._conn.execute(sql, params)
                    written = Written(cur.rowcount, cur.lastrowid)
                for row_sql, row_params in rows:
                    await self._conn.execute("SAVEPOINT attached")
                    try:
                        await self._conn.execute(row_sql, row_params)
                    except sqlite3.Error as exc:
                        await self._conn.execute("ROLLBACK TO attached")
                        self.attached_lost += 1
                        log.warning("attached_row_dropped", error=str(exc))
                    await self._conn.execute("RELEASE attached")
                await self._conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await self._conn.execute("ROLLBACK")
                # The write they rode with failed (locked, disk full): they wait for the
                # next one, unless newer rows filled the bound meanwhile.
                room = max(0, MAX_ATTACHED - len(self._attached))
                kept = rows[len(rows) - room :] if room < len(rows) else rows
                self.attached_lost += len(rows) - len(kept)
                self._attached.extendleft(reversed(kept))
                raise
        finally:
            if not durable:
                await self._conn.execute("PRAGMA synchronous = FULL")
        return written

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self._lock.hold(), self._conn.execute(sql, params) as cur:
            return [tuple(row) for row in await cur.fetchall()]

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        async with self._lock.hold(), self._conn.execute(sql, params) as cur:
            row = await cur.fetchone()
        return tuple(row) if row is not None else None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """``BEGIN IMMEDIATE`` .. ``COMMIT``, rolled back on any exception."""
        async with self._lock.hold():
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(self._conn)
            except BaseException:
                try:
                    await self._conn.execute("ROLLBACK")
                except sqlite3.Error as exc:
                    log.warning("rollback_failed", error=str(exc))
                raise
            await self._conn.execute("COMMIT")

    async def close(self) -> None:
        await self._conn.close()


class Transaction:
    __slots__ = ("_conn",)

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._conn.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)


async def open_db(state_dir: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Database:
    """Open (creating and migrating) the database; raise StorageError naming the path.

    The state directory is made private first (0700, files 0600: ``statedir.prepare``)
    and the file is created 0600 before SQLite opens it, so its -wal and -shm files get
    the same mode whatever the umask. A failure says what is wrong with the directory
    (``StateDirError``: read-only, disk full, permissions) where that is the cause; only
    a file SQLite cannot read as a database is called "not a usable gateway database".
    """
    from gateway.statedir import StateDirError, create_private, diagnose, prepare

    path = state_dir / DB_NAME
    await asyncio.to_thread(prepare, state_dir)
    try:
        await asyncio.to_thread(create_private, path)
        db = await aiosqlite.connect(path, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StateDirError(diagnose(state_dir, exc) or f"cannot open {path}: {exc}") from exc
    try:
        await db.execute(f"PRAGMA busy_timeout = {CLI_BUSY_TIMEOUT_MS}")  # start-up may wait
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = FULL")
        await _migrate(db)
        await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    except sqlite3.DatabaseError as exc:
        await db.close()
        problem = _environment(state_dir, exc)
        if problem is not None:
            raise StateDirError(problem) from exc
        raise StorageError(f"{path} is not a usable gateway database: {exc}") from exc
    except BaseException:
        await db.close()
        raise
    return Database(db, path)


async def open_state(
    state_dir: Path, problem: str | None, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS
) -> tuple[Database, str | None]:
    """The daemon's database, and why it is not durable (None when it is).

    A state directory that cannot hold the database (full, read-only, not ours:
    ``StateDirError``; ``problem`` when the CLI found it so already) must not keep the
    door shut at 7 a.m.: the gateway then runs on a database in memory, so doors keep
    deciding and check-ins are delivered online, but what is queued is lost if the
    gateway stops; it says so in the log, ``status`` and systemd's status line. A
    database file that is not one (corrupt) still ends the start: it may hold queued
    check-ins, and someone has to look (the error says so)."""
    from gateway.statedir import StateDirBusy, StateDirError

    if problem is None:
        try:
            return await open_db(state_dir, busy_timeout_ms=busy_timeout_ms), None
        except StateDirBusy:
            raise
        except StateDirError as exc:
            problem = str(exc)
    log.error(
        "state_not_durable",
        problem=problem,
        effect="deciding doors from memory; queued check-ins are lost if the gateway "
        "stops: fix the state directory, then restart the gateway",
    )
    db = await aiosqlite.connect(":memory:", isolation_level=None)
    await _migrate(db)
    return Database(db, Path(":memory:")), problem


def _environment(state_dir: Path, exc: sqlite3.Error) -> str | None:
    """The state directory's fault behind a SQLite error, or None when the file itself
    is the problem (corrupt, not a database)."""
    from gateway.statedir import diagnose

    code = getattr(exc, "sqlite_errorcode", None)
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return None
    return diagnose(state_dir, exc) or (
        f"{state_dir}: SQLite cannot write there ({exc})"
        if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN)
        else None
    )


class NoDatabase(StorageError):
    """``open_db_readonly``: the state directory has no database (the gateway never ran)."""


async def open_db_readonly(state_dir: Path) -> Database:
    """Open the database for reading only (``status``, ``queue list``): never creates,
    migrates or otherwise writes. Raises NoDatabase when there is none yet.

    SQLite's ``mode=ro`` still creates -wal and -shm files next to a WAL database (and
    fails on a read-only mount). So when no gateway holds the state directory and no
    -wal file is left over (a clean stop checkpoints and removes it), the file is
    opened ``immutable=1``: complete as it is, nothing written. Otherwise (a daemon is
    running, or a crash left a -wal) ``mode=ro`` reads through the existing -wal/-shm.
    """
    from gateway.statedir import holder

    path = state_dir / DB_NAME
    if not path.is_file():
        raise NoDatabase(f"{state_dir} has no database yet (the gateway never ran with it)")
    wal = path.with_name(DB_NAME + "-wal")
    quiet = holder(state_dir) is None and not (wal.exists() and wal.stat().st_size > 0)
    uri = f"{path.as_uri()}?{'immutable=1' if quiet else 'mode=ro'}"
    try:
        db = await aiosqlite.connect(uri, uri=True, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"cannot read {path}: {exc}") from exc
    try:
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        async with db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
    except sqlite3.Error as exc:
        await db.close()
        raise StorageError(f"cannot read {path}: {exc}") from exc
    if not row or int(row[0]) == 0:
        await db.close()
        raise NoDatabase(f"{path} holds no gateway tables yet")
    return Database(db, path)


async def schema_version(db: Database) -> int:
    row = await db.fetchone("PRAGMA user_version")
    return int(row[0]) if row else 0


async def _migrate(db: aiosqlite.Connection) -> None:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    for number, script in enumerate(_SCHEMA[version:], start=version + 1):
        await db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        log.info("db_migrated", version=number)
