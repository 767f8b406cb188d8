"""The access log: every decision in SQLite, searchable, kept ``access_log_days``.

Written from the decision hook through a bounded queue by one writer task, each row
committed with ``durable=False`` (no fsync of its own; WAL with synchronous=NORMAL: a
power cut may lose the last rows, never corrupt the file, and the next durable commit,
such as the tap's outbox record, makes them durable). Pruned once a day. The token is
stored redacted: the log answers "who came in when", not "which card number".
"""

from __future__ import annotations

import asyncio
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
QUEUE_SIZE = 1000  # decisions waiting to be written; beyond, counted as lost
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
        self._queue: asyncio.Queue[TapEvent] = asyncio.Queue(QUEUE_SIZE)
        self.lost = 0  # decisions not logged (queue full or a write failed)
        self.written = 0

    async def setup(self) -> None:
        for statement in filter(str.strip, SCHEMA.split(";")):
            await self._db.execute(statement)

    def hook(self, decision: Decision) -> None:
        try:
            self._queue.put_nowait(TapEvent.of(decision))
        except asyncio.QueueFull:
            self.lost += 1

    async def run(self) -> None:
        """The writer and the daily prune, one part of the daemon."""
        await self.setup()
        pruned_at = 0.0
        while True:
            if time.monotonic() - pruned_at >= PRUNE_INTERVAL or pruned_at == 0.0:
                await self.prune()
                pruned_at = time.monotonic()
            try:
                async with asyncio.timeout(60):
                    event = await self._queue.get()
            except TimeoutError:
                continue
            await self._write(event)

    async def flush(self) -> None:
        """Write whatever waits (tests and stop)."""
        while not self._queue.empty():
            await self._write(self._queue.get_nowait())

    async def _write(self, e: TapEvent) -> None:
        try:
            await self._db.execute(
                "INSERT INTO access_log (at, day, reader, token, member, membership_id, "
                "outcome, reason, opened, latency_ms, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                durable=False,
            )
            self.written += 1
        except Exception as exc:  # noqa: BLE001 - a log row must never stop the writer
            self.lost += 1
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
