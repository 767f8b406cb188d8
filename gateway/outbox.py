"""The durable outbox: check-ins and check-outs waiting for the API.

A row is committed before the door opens (``synchronous=FULL``), so a power cut right
after the door opened loses nothing. States::

    pending --send--> sending --answer--> delivered | failed (final, with the API's reason)
                         \\--timeout--> sending (outcome unknown: look before resending)

``sending`` is written *before* the request goes out; finding a row in ``sending`` after
a crash or a timeout means "maybe delivered", and the drainer checks Cobot before it
sends again. That is how a crash at any instant neither loses nor doubles a check-in.
"""

from __future__ import annotations

import enum
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.errors import StorageError
from gateway.store import Database, is_disk_full


class Kind(enum.StrEnum):
    CHECK_IN = "check_in"
    CHECK_OUT = "check_out"


class State(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"
    DROPPED = "dropped"  # an operator gave up on it (`queue drop`): kept, with who/when


OPEN_STATES = (State.PENDING, State.SENDING)
# Delivered rows are kept this long for `queue list` and debugging, then deleted.
KEEP_DELIVERED = 7 * 24 * 3600.0


class OutboxFull(StorageError):
    """The queue is at its configured bound; the new entry was not stored."""


class DiskFull(StorageError):
    """SQLite could not write: the disk (or the state dir's quota) is full."""


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    kind: Kind
    token: str | None
    membership_id: str | None
    reader: str
    tapped_at: datetime
    state: State
    attempts: int
    next_attempt_at: float
    last_error: str | None
    result_id: str | None
    created_at: float


_COLUMNS = (
    "id, kind, token, membership_id, reader, tapped_at, state, attempts, next_attempt_at, "
    "last_error, result_id, created_at"
)


def _entry(row: tuple[Any, ...]) -> Entry:
    (id_, kind, token, mid, reader, tapped, state, attempts, nxt, err, res, created) = row
    return Entry(
        id=int(id_),
        kind=Kind(kind),
        token=token,
        membership_id=mid,
        reader=str(reader),
        tapped_at=datetime.fromisoformat(str(tapped)),
        state=State(state),
        attempts=int(attempts),
        next_attempt_at=float(nxt),
        last_error=err,
        result_id=res,
        created_at=float(created),
    )


class Outbox:
    def __init__(self, db: Database, max_entries: int) -> None:
        self._db = db
        self._max = max_entries
        self._open = 0  # rows in OPEN_STATES; kept in memory so the tap path needs no COUNT

    async def load(self) -> None:
        row = await self._db.fetchone(
            "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')"
        )
        self._open = int(row[0]) if row else 0

    @property
    def depth(self) -> int:
        return self._open

    async def add(
        self,
        kind: Kind,
        *,
        token: str | None,
        membership_id: str | None,
        reader: str,
        tapped_at: datetime,
    ) -> int:
        """Store an entry durably; raise OutboxFull at the bound, DiskFull when SQLite
        cannot write. Either way nothing already queued is touched."""
        if self._open >= self._max:
            raise OutboxFull(f"outbox holds {self._open} entries (queue.max_entries)")
        now = time.time()
        try:
            written = await self._db.execute(
                "INSERT INTO outbox (kind, token, membership_id, reader, tapped_at, state, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                (kind.value, token, membership_id, reader, tapped_at.isoformat(), now, now),
                urgent=True,  # a person is at the door
            )
        except sqlite3.Error as exc:
            raise _storage_error("cannot queue", exc) from exc
        self._open += 1
        assert written.lastrowid is not None
        return written.lastrowid

    async def get(self, entry_id: int) -> Entry | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM outbox WHERE id = ?", (entry_id,))
        return _entry(row) if row else None

    async def head(self, limit: int = 50) -> list[Entry]:
        """The oldest open entries, in order."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM outbox WHERE state IN ('pending', 'sending') "
            "ORDER BY id LIMIT ?",
            (limit,),
        )
        return [_entry(r) for r in rows]

    async def has_older_open(self, entry: Entry) -> bool:
        """Whether an earlier entry of the same member still waits (it must go first:
        a check-out must not overtake the check-in it ends)."""
        if entry.membership_id is None:
            return False
        row = await self._db.fetchone(
            "SELECT 1 FROM outbox WHERE state IN ('pending', 'sending') AND id < ? "
            "AND membership_id = ? LIMIT 1",
            (entry.id, entry.membership_id),
        )
        return row is not None

    async def list(self, *, include_done: bool = False, limit: int = 200) -> list[Entry]:
        where = "" if include_done else "WHERE state IN ('pending', 'sending', 'failed')"
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM outbox {where} ORDER BY id LIMIT ?", (limit,)
        )
        return [_entry(r) for r in rows]

    async def mark_sending(self, entry_id: int) -> None:
        await self._update(
            "UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated_at = ? "
            "WHERE id = ?",
            (time.time(), entry_id),
        )

    async def mark_delivered(self, entry_id: int, result_id: str | None) -> None:
        await self._close(entry_id, State.DELIVERED, None, result_id)

    async def mark_failed(self, entry_id: int, reason: str) -> None:
        await self._close(entry_id, State.FAILED, reason, None)

    async def defer(
        self, entry_id: int, error: str, delay: float, *, outcome_unknown: bool
    ) -> None:
        """Try again after ``delay`` s; ``outcome_unknown`` keeps the row in ``sending``
        so the next attempt looks before it resends."""
        state = State.SENDING if outcome_unknown else State.PENDING
        await self._update(
            "UPDATE outbox SET state = ?, next_attempt_at = ?, last_error = ?, updated_at = ? "
            "WHERE id = ?",
            (state.value, time.time() + delay, error[:500], time.time(), entry_id),
        )

    async def retry(self, entry_id: int) -> bool:
        """Operator: put a failed entry back in the queue (or hurry a deferred one)."""
        cur = await self._update(
            "UPDATE outbox SET state = CASE state WHEN 'failed' THEN 'pending' ELSE state END, "
            "next_attempt_at = 0, updated_at = ? WHERE id = ? AND state != 'delivered'",
            (time.time(), entry_id),
        )
        return cur > 0

    async def drop(self, entry_id: int) -> bool:
        """Operator: give up on an entry (it is deleted, not delivered)."""
        cur = await self._update(
            "DELETE FROM outbox WHERE id = ? AND state != 'delivered'", (entry_id,)
        )
        return cur > 0

    async def mark_dropped(self, entry_id: int, by: str) -> bool:
        """Operator: give up on an entry that was not delivered. The row stays, in
        state ``dropped`` with who and when (schema version 2), so ``queue list --all``
        still shows what became of the tap. False when no such open or failed entry."""
        row = await self._db.fetchone("SELECT state FROM outbox WHERE id = ?", (entry_id,))
        changed = await self._update(
            "UPDATE outbox SET state = 'dropped', dropped_by = ?, dropped_at = ?, "
            "updated_at = ? WHERE id = ? AND state IN ('pending', 'sending', 'failed')",
            (by, time.time(), time.time(), entry_id),
        )
        if changed and row is not None and row[0] in OPEN_STATES:
            self._open = max(0, self._open - 1)
        return changed > 0

    async def purge_delivered(self, older_than: float = KEEP_DELIVERED) -> None:
        await self._update(
            "DELETE FROM outbox WHERE state = 'delivered' AND updated_at < ?",
            (time.time() - older_than,),
        )

    async def stats(self) -> dict[str, object]:
        rows = await self._db.fetchall(
            "SELECT state, COUNT(*), MIN(created_at) FROM outbox GROUP BY state"
        )
        counts = {str(s): int(n) for s, n, _ in rows}
        oldest = min(
            (float(t) for s, _, t in rows if s in ("pending", "sending")),
            default=None,
        )
        err = await self._db.fetchone(
            "SELECT last_error FROM outbox WHERE last_error IS NOT NULL "
            "ORDER BY updated_at DESC LIMIT 1"
        )
        return {
            "depth": counts.get("pending", 0) + counts.get("sending", 0),
            "failed": counts.get("failed", 0),
            "delivered": counts.get("delivered", 0),
            "oldest_age_s": None if oldest is None else round(time.time() - oldest, 1),
            "last_error": err[0] if err else None,
            "bound": self._max,
        }

    async def _close(
        self, entry_id: int, state: State, error: str | None, result_id: str | None
    ) -> None:
        changed = await self._update(
            "UPDATE outbox SET state = ?, last_error = COALESCE(?, last_error), result_id = ?, "
            "updated_at = ? WHERE id = ? AND state IN ('pending', 'sending')",
            (state.value, error, result_id, time.time(), entry_id),
        )
        self._open = max(0, self._open - changed)

    async def _update(self, sql: str, params: tuple[object, ...]) -> int:
        try:
            written = await self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise _storage_error("cannot update the queue", exc) from exc
        return written.rowcount


def _storage_error(what: str, exc: sqlite3.Error) -> StorageError:
    if is_disk_full(exc):
        return DiskFull(f"outbox: {what}: the disk is full ({exc})")
    return StorageError(f"outbox: {what}: {exc}")
