"""Who is checked in, until when: one owner, and everyone else sends it events.

The decision sends ``checked_in`` when a check-in was stored or delivered (never only
decided: a member whose check-in was lost must be asked about again), ``checked_out``
on an exit; the delivery sends ``checked_in`` with Cobot's own ``valid_until`` when a
check-in landed; the portal's sign-in goes through the decision like any tap. Nobody
else writes here. Re-entries read ``until`` from memory (the tap path never reads the
disk); every change is written through to the ``active`` table so a restart keeps it.

It also remembers, until the end of the local day, the members Cobot refused online
(no pass left, unconfirmed): the offline policy must not let in someone the API said no
to an hour ago just because the API is now out of reach; and the members checked out
today (by an exit reader or by their devices leaving), so that a presence reader does not
check them in again the same day (Cobot counts one check-in per member per day; a second
one uses a second time pass). Check-outs are written through to the ``meta`` table (one
``checked_out:<membership id>`` row each) so a restart keeps them; refusals are memory
only (a restart costs one preview).

Presence readers (gateway/readers/mac) ask their questions here instead of keeping their
own memory of who was announced or checked out: ``until``, ``checked_out_today``,
``refusal`` (the ``PresenceQuestions`` protocol in gateway/readers/base.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from gateway.store import Database

log = structlog.get_logger(__name__)

PRUNE_INTERVAL = 3600.0  # seconds between prunes of ended check-ins
_CHECKED_OUT = "checked_out:"  # meta key prefix: + membership id -> when checked out


def end_of_local_day(at: datetime) -> datetime:
    """The last second of ``at``'s day in the gateway's own time zone, as UTC.

    Offline we do not know the space's time zone; the gateway's own is the best guess (a
    Pi in the space runs on local time)."""
    local = at.astimezone()
    end = local.replace(hour=23, minute=59, second=59, microsecond=0)
    return (end if end > local else end + timedelta(days=1)).astimezone(UTC)


class Attendance:
    """The members checked in now (membership id -> valid until, UTC)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._until: dict[str, datetime] = {}
        self._refused: dict[str, tuple[datetime, str]] = {}  # token -> (until, reason)
        # membership id -> when they were checked out (today; pruned after that day)
        self._out: dict[str, datetime] = {}

    async def load(self) -> None:
        rows = await self._db.fetchall("SELECT membership_id, valid_until FROM active")
        self._until = {mid: datetime.fromisoformat(until) for mid, until in rows}
        rows = await self._db.fetchall(
            "SELECT key, value FROM meta WHERE key LIKE ?", (f"{_CHECKED_OUT}%",)
        )
        self._out = {}
        for key, value in rows:
            try:
                self._out[key.removeprefix(_CHECKED_OUT)] = datetime.fromisoformat(value)
            except ValueError:  # an edited row: forgetting it costs one check-in at most
                log.warning("attendance_row_skipped", key=key)

    # --- questions: memory only --------------------------------------------------------

    def until(self, membership_id: str, at: datetime | None = None) -> datetime | None:
        """When the member's check-in ends, or None if they are not checked in at ``at``."""
        until = self._until.get(membership_id)
        if until is None or until <= (at or datetime.now(UTC)):
            return None
        return until

    def refusal(self, token: str, at: datetime) -> str | None:
        """Cobot's reason if it refused this token earlier the same local day."""
        found = self._refused.get(token)
        if found is None or found[0] <= at:
            return None
        return found[1]

    def checked_out_today(self, membership_id: str, at: datetime) -> bool:
        """Whether the member was checked out earlier on ``at``'s local day (and not
        checked in since)."""
        out = self._out.get(membership_id)
        return out is not None and end_of_local_day(out) == end_of_local_day(at)

    def __len__(self) -> int:
        return len(self._until)

    # --- events --------------------------------------------------------------------

    async def checked_in(
        self, membership_id: str, valid_until: datetime, tapped_at: datetime | None = None
    ) -> None:
        """A check-in was stored durably or delivered; it lasts until ``valid_until``.

        ``tapped_at``: when its tap was read. A check-in queued offline and delivered
        after the member's later check-out does not make them checked in again."""
        out = self._out.get(membership_id)
        if tapped_at is not None and out is not None and out > tapped_at:
            log.info("check_in_older_than_check_out", membership_id=membership_id)
            return
        known = self._until.get(membership_id)
        if known is not None and known >= valid_until:
            return  # an earlier, longer answer (Cobot's own) stays
        self._until[membership_id] = valid_until
        if self._out.pop(membership_id, None) is not None:  # checked in again on purpose
            await self._write("DELETE FROM meta WHERE key = ?", (_CHECKED_OUT + membership_id,))
        await self._write(
            "INSERT OR REPLACE INTO active (membership_id, valid_until) VALUES (?, ?)",
            (membership_id, valid_until.astimezone(UTC).isoformat()),
        )

    async def checked_out(self, membership_id: str, at: datetime | None = None) -> None:
        """The member was checked out at ``at`` (default: now): not checked in any more,
        and ``checked_out_today`` says so until the end of that local day."""
        self._until.pop(membership_id, None)
        at = (at or datetime.now(UTC)).astimezone(UTC)
        self._out[membership_id] = at
        await self._write("DELETE FROM active WHERE membership_id = ?", (membership_id,))
        await self._write(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (_CHECKED_OUT + membership_id, at.isoformat()),
        )

    def refused(self, token: str, reason: str, at: datetime) -> None:
        """Cobot refused this token online (memory only: a restart forgets, which costs at
        most one preview)."""
        self._refused[token] = (end_of_local_day(at), reason)

    def accepted(self, token: str) -> None:
        """Cobot said yes after all (a pass was bought): forget the refusal."""
        self._refused.pop(token, None)

    async def prune(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        self._until = {m: u for m, u in self._until.items() if u > now}
        self._refused = {t: r for t, r in self._refused.items() if r[0] > now}
        ended = [m for m, out in self._out.items() if end_of_local_day(out) <= now]
        for membership_id in ended:
            del self._out[membership_id]
        await self._write("DELETE FROM active WHERE valid_until <= ?", (now.isoformat(),))
        for membership_id in ended:
            await self._write("DELETE FROM meta WHERE key = ?", (_CHECKED_OUT + membership_id,))

    async def keep_pruned(
        self, now: Callable[[], datetime], interval: float = PRUNE_INTERVAL
    ) -> None:
        """Prune ended check-ins every ``interval`` seconds (a supervised part)."""
        while True:
            await self.prune(now())
            await asyncio.sleep(interval)

    async def _write(self, sql: str, params: tuple[object, ...]) -> None:
        # Not synced to disk: losing a row to a power cut costs one API call after the
        # restart, and the tap path keeps its single fsync (the record's).
        try:
            await self._db.execute(sql, params, durable=False)
        except sqlite3.Error as exc:
            # Memory still knows; losing this row only costs one API call after a restart.
            log.warning("attendance_store_failed", error=str(exc))
