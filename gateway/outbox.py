"""The durable outbox: check-ins and check-outs waiting for the API.

A row is committed before the door opens (``synchronous=FULL``), so a power cut right
after the door opened loses nothing. It is committed ``held``: the drainer does not see
it until the door has opened (``release``), so a door that fails, however slowly, bills
nobody (``drop``). States::

    held --door opened--> pending --send--> sending --answer--> delivered | failed
      \\--door failed--> (deleted)           \\--timeout--> sending (outcome unknown)

A ``held`` row found at start means the gateway stopped (power cut, SIGKILL) while its
door was moving: the door's outcome is unknown. It is delivered: Cobot bills one
check-in a day, so if the door stayed shut and the member tapped again nothing more is
billed, while dropping it would lose the visit of a member who did get in.

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
from gateway.model import ClockQuality, RecordKind
from gateway.store import Database, is_disk_full

HELD_AT_START = "the gateway stopped while the door was opening (door outcome unknown)"


class State(enum.StrEnum):
    HELD = "held"  # committed, waiting for the door's outcome; invisible to the drainer
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"
    DROPPED = "dropped"  # an operator gave up on it (`queue drop`): kept, with who/when


OPEN_STATES = (State.HELD, State.PENDING, State.SENDING)
# Delivered rows are kept this long for `queue list` and debugging, then deleted.
KEEP_DELIVERED = 7 * 24 * 3600.0


class OutboxFull(StorageError):
    """The queue is at its configured bound; the new entry was not stored."""


class DiskFull(StorageError):
    """SQLite could not write: the disk (or the state dir's quota) is full."""


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    kind: RecordKind
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
    backend: str = "cobot"
    clock: ClockQuality = ClockQuality.SYNCED
    boot_id: str | None = None
    tapped_mono: float | None = None


_COLUMNS = (
    "id, kind, token, membership_id, reader, tapped_at, state, attempts, next_attempt_at, "
    "last_error, result_id, created_at, backend, clock, boot_id, tapped_mono"
)


def _entry(row: tuple[Any, ...]) -> Entry:
    (id_, kind, token, mid, reader, tapped, state, attempts, nxt, err, res, created) = row[:12]
    backend, clock, boot_id, mono = row[12:]
    return Entry(
        id=int(id_),
        kind=RecordKind(kind),
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
        backend=str(backend),
        clock=ClockQuality(clock),
        boot_id=boot_id,
        tapped_mono=None if mono is None else float(mono),
    )


class Outbox:
    def __init__(self, db: Database, max_entries: int) -> None:
        self._db = db
        self._max = max_entries
        self._open = 0  # rows in OPEN_STATES; kept in memory so the tap path needs no COUNT

    async def load(self) -> None:
        row = await self._db.fetchone(
            "SELECT COUNT(*) FROM outbox WHERE state IN ('held', 'pending', 'sending')"
        )
        self._open = int(row[0]) if row else 0

    @property
    def depth(self) -> int:
        return self._open

    async def add(
        self,
        kind: RecordKind,
        *,
        token: str | None,
        membership_id: str | None,
        reader: str,
        tapped_at: datetime,
        state: State = State.PENDING,
        backend: str = "cobot",
        clock: ClockQuality = ClockQuality.SYNCED,
        boot_id: str | None = None,
        tapped_mono: float | None = None,
        result_id: str | None = None,
        last_error: str | None = None,
        budget: float | None = None,
    ) -> int:
        """Store an entry durably (``HELD`` until ``release`` when a door must open
        first; a later state when memory kept it while the database was busy); raise
        OutboxFull at the bound, DiskFull when SQLite cannot write, StorageError when the
        database stays locked past ``budget`` seconds. Either way nothing already
        queued is touched."""
        opens = state in OPEN_STATES
        if opens and self._open >= self._max:
            raise OutboxFull(f"outbox holds {self._open} entries (queue.max_entries)")
        now = time.time()
        try:
            written = await self._db.execute(
                "INSERT INTO outbox (kind, token, membership_id, reader, tapped_at, state, "
                "created_at, updated_at, backend, clock, boot_id, tapped_mono, result_id, "
                "last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    kind.value,
                    token,
                    membership_id,
                    reader,
                    tapped_at.isoformat(),
                    state.value,
                    now,
                    now,
                    backend,
                    clock.value,
                    boot_id,
                    tapped_mono,
                    result_id,
                    last_error,
                ),
                urgent=True,  # a person is at the door
                budget=budget,
            )
        except sqlite3.Error as exc:
            raise _storage_error("cannot queue", exc) from exc
        except TimeoutError as exc:
            raise StorageError(f"outbox: cannot queue: database busy for {budget} s") from exc
        self._open += opens
        assert written.lastrowid is not None
        return written.lastrowid

    async def release(self, entry_id: int) -> None:
        """The door opened: the held entry may be delivered now. Not synced to disk: if a
        power cut undoes it, the row is still held and released at the next start, the
        same outcome (so the tap path pays one fsync, not two)."""
        await self._update(
            "UPDATE outbox SET state = 'pending', updated_at = ? WHERE id = ? AND state = 'held'",
            (time.time(), entry_id),
            durable=False,
        )

    async def discard_held(self, entry_id: int) -> None:
        """The door did not open: the held entry never happened."""
        changed = await self._update(
            "DELETE FROM outbox WHERE id = ? AND state = 'held'", (entry_id,)
        )
        self._open = max(0, self._open - changed)

    async def release_held_at_start(self) -> int:
        """Rows left ``held`` by a stop while a door was moving: delivered (see above)."""
        return await self._update(
            "UPDATE outbox SET state = 'pending', last_error = ?, updated_at = ? "
            "WHERE state = 'held'",
            (HELD_AT_START, time.time()),
        )

    async def correct_time(self, entry_id: int, tapped_at: datetime, clock: ClockQuality) -> None:
        """The tap's time, corrected once the clock was synchronised (or marked
        ``NOW``: deliver as of the delivery, the tap's own day being unknown)."""
        await self._update(
            "UPDATE outbox SET tapped_at = ?, clock = ?, updated_at = ? WHERE id = ?",
            (tapped_at.isoformat(), clock.value, time.time(), entry_id),
        )

    async def get(self, entry_id: int) -> Entry | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM outbox WHERE id = ?", (entry_id,))
        return _entry(row) if row else None

    async def head(self, limit: int = 50, *, backend: str = "cobot") -> list[Entry]:
        """The oldest open entries of one backend, in order."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM outbox WHERE state IN ('pending', 'sending') "
            "AND backend = ? ORDER BY id LIMIT ?",
            (backend, limit),
        )
        return [_entry(r) for r in rows]

    async def has_older_open(self, entry: Entry) -> bool:
        """Whether an earlier entry of the same member still waits (it must go first:
        a check-out must not overtake the check-in it ends)."""
        if entry.membership_id is None:
            return False
        row = await self._db.fetchone(
            "SELECT 1 FROM outbox WHERE state IN ('pending', 'sending') AND id < ? "
            "AND membership_id = ? AND backend = ? LIMIT 1",
            (entry.id, entry.membership_id, entry.backend),
        )
        return row is not None

    async def list(self, *, include_done: bool = False, limit: int = 200) -> list[Entry]:
        where = "" if include_done else "WHERE state IN ('pending', 'sending', 'failed')"
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM outbox {where} ORDER BY id LIMIT ?", (limit,)
        )
        return [_entry(r) for r in rows]

    async def mark_sending(self, entry_id: int) -> bool:
        """Written before the request goes out; False when the entry is no longer open
        (an operator dropped it meanwhile): then nothing may be sent."""
        changed = await self._update(
            "UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated_at = ? "
            "WHERE id = ? AND state IN ('pending', 'sending')",
            (time.time(), entry_id),
        )
        return changed > 0

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
        row = await self._db.fetchone("SELECT state FROM outbox WHERE id = ?", (entry_id,))
        cur = await self._update(
            "UPDATE outbox SET state = CASE state WHEN 'failed' THEN 'pending' ELSE state END, "
            "next_attempt_at = 0, updated_at = ? WHERE id = ? AND state != 'delivered'",
            (time.time(), entry_id),
        )
        if cur and row is not None and row[0] == State.FAILED.value:
            self._open += 1  # open again: the depth counts it at once, not at the next load
        return cur > 0

    async def mark_dropped(self, entry_id: int, by: str) -> bool:
        """Operator: give up on an entry that was not delivered. The row stays, in
        state ``dropped`` with who and when (schema version 3), so ``queue list --all``
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

    async def stats(self) -> dict[str, Any]:
        """``summary`` of this outbox (metrics scrape it)."""
        return await summary(self._db, self._max)

    async def _close(
        self, entry_id: int, state: State, error: str | None, result_id: str | None
    ) -> None:
        changed = await self._update(
            "UPDATE outbox SET state = ?, last_error = COALESCE(?, last_error), result_id = ?, "
            "updated_at = ? WHERE id = ? AND state IN ('pending', 'sending')",
            (state.value, error, result_id, time.time(), entry_id),
        )
        self._open = max(0, self._open - changed)

    async def _update(self, sql: str, params: tuple[object, ...], *, durable: bool = True) -> int:
        try:
            written = await self._db.execute(sql, params, durable=durable)
        except sqlite3.Error as exc:
            raise _storage_error("cannot update the queue", exc) from exc
        return written.rowcount


async def summary(db: Database, bound: int) -> dict[str, Any]:
    """Counts by state, the oldest waiting entry's age (s, or None), and the last error
    of an entry still waiting (None once everything waiting is error-free: a recovered
    outage leaves no stale error behind). Read-only: ``status`` runs it on a read-only
    connection while the daemon writes."""
    rows = await db.fetchall("SELECT state, COUNT(*), MIN(created_at) FROM outbox GROUP BY state")
    counts = {str(s): int(n) for s, n, _ in rows}
    oldest = min((float(t) for s, _, t in rows if s in ("pending", "sending")), default=None)
    err = await db.fetchone(
        "SELECT last_error FROM outbox WHERE state IN ('pending', 'sending') "
        "AND last_error IS NOT NULL ORDER BY updated_at DESC LIMIT 1"
    )
    return {
        "depth": counts.get("pending", 0) + counts.get("sending", 0),
        "failed": counts.get("failed", 0),
        "dropped": counts.get("dropped", 0),
        "delivered": counts.get("delivered", 0),
        "oldest_age_s": None if oldest is None else round(time.time() - oldest, 1),
        "open_error": err[0] if err else None,
        "bound": bound,
    }


def _storage_error(what: str, exc: sqlite3.Error) -> StorageError:
    if is_disk_full(exc):
        return DiskFull(f"outbox: {what}: the disk is full ({exc})")
    return StorageError(f"outbox: {what}: {exc}")
