"""The access log: every decision in SQLite, searchable, kept ``access_log_days``.

Written from the decision journal, which the decider calls just before it releases (door
opened) or discards (door failed) the tap's record: the row is attached to the database
(``Database.attach``) and committed in the same transaction as that record, so the log
costs the tap path no commit and no fsync of its own. A refused tap has no record: its
row rides with the next write, or is written within ``FLUSH_INTERVAL`` seconds without
an fsync (WAL with synchronous=NORMAL: a power cut may lose the last such rows, never
corrupt the file). Pruned once a day. The token is stored redacted: the log answers
"who came in when", not "which card number".
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import structlog

from gateway.admin.feed import TapEvent
from gateway.decide import Decision
from gateway.store import Database

log = structlog.get_logger(__name__)

PRUNE_INTERVAL = 86_400.0  # seconds between prunes
FLUSH_INTERVAL = 1.0  # seconds a row waits at most for a write to ride with
INSERT = (
    "INSERT INTO access_log (at, day, reader, token, member, membership_id, "
    "outcome, reason, opened, latency_ms, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
PAGE_SIZE = 200  # rows a search returns at most
CSV_LIMIT = 100_000  # rows a CSV download holds at most

SCHEMA = """
CREATE TABLE IF NOT EXISTS access_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    day TEXT NOT NULL,
    reader TEXT NOT NULL,
    token TEXT NOT NULL,
    member TEXT,
    membership_id TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    opened INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS access_log_day ON access_log (day);
"""
COLUMNS = (
    "at",
    "reader",
    "token",
    "member",
    "membership_id",
    "outcome",
    "reason",
    "opened",
    "latency_ms",
)


@dataclass(frozen=True, slots=True)
class Query:
    """A search: each given field narrows it (``text`` matches member name or id)."""

    text: str = ""
    reader: str = ""
    day: date | None = None


class AccessLog:
    def __init__(self, db: Database, days: int) -> None:
        self._db = db
        self._days = days
        self.logged = 0  # decisions handed to the database

    @property
    def lost(self) -> int:
        """Rows not logged: refused by SQLite, or beyond the bound of rows waiting."""
        return self._db.attached_lost

    async def setup(self) -> None:
        for statement in filter(str.strip, SCHEMA.split(";")):
            await self._db.execute(statement)

    def hook(self, decision: Decision) -> None:
        e = TapEvent.of(decision)
        self._db.attach(
            INSERT,
            (
                e.at,
                e.at[:10],
                e.reader,
                e.token,
                e.member,
                e.membership_id,
                e.outcome,
                e.reason,
                int(e.opened),
                e.latency_ms,
                time.time(),
            ),
        )
        self.logged += 1

    async def run(self) -> None:
        """The flush of rows no write took, and the daily prune: one part of the daemon."""
        await self.setup()
        pruned_at = 0.0
        try:
            while True:
                if pruned_at == 0.0 or time.monotonic() - pruned_at >= PRUNE_INTERVAL:
                    await self.prune()
                    pruned_at = time.monotonic()
                await asyncio.sleep(FLUSH_INTERVAL)
                await self.flush()
        finally:
            # At stop: the last refusals too (bounded: the runner's stop has a deadline).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self.flush()

    async def flush(self) -> None:
        """Write the rows that wait (before a search, at stop, every second)."""
        try:
            await self._db.flush_attached()
        except Exception as exc:  # noqa: BLE001 - they wait for the next write
            log.warning("access_log_write_failed", error=str(exc))

    async def prune(self, now: datetime | None = None) -> int:
        cutoff = ((now or datetime.now(UTC)) - timedelta(days=self._days)).date().isoformat()
        written = await self._db.execute(
            "DELETE FROM access_log WHERE day < ?", (cutoff,), durable=False
        )
        if written.rowcount:
            log.info("access_log_pruned", rows=written.rowcount, before=cutoff)
        return written.rowcount

    async def search(self, q: Query, limit: int = PAGE_SIZE) -> list[dict[str, object]]:
        await self.flush()  # the page shows the tap that just happened
        where: list[str] = []
        params: list[object] = []
        if q.text:
            where.append("(member LIKE ? ESCAPE '\\' OR membership_id = ?)")
            params += [f"%{_like(q.text)}%", q.text]
        if q.reader:
            where.append("reader = ?")
            params.append(q.reader)
        if q.day is not None:
            where.append("day = ?")
            params.append(q.day.isoformat())
        sql = f"SELECT {', '.join(COLUMNS)} FROM access_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self._db.fetchall(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows]

    async def csv(self, q: Query) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for row in await self.search(q, CSV_LIMIT):
            writer.writerow([_cell(row[c]) for c in COLUMNS])
        return out.getvalue()

    async def readers(self) -> Sequence[str]:
        rows = await self._db.fetchall("SELECT DISTINCT reader FROM access_log ORDER BY reader")
        return [str(r[0]) for r in rows]


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _cell(value: object) -> object:
    """Spreadsheets run a cell starting with = + - @ as a formula (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value
