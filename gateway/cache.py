"""The token cache and the members already checked in today.

Both live in SQLite (so they survive restarts) with a hot in-memory mirror: the tap path
reads only the mirror (a dict lookup), never the database. Writes go to SQLite first and
then to the mirror, so the mirror never claims what the disk does not hold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime

import structlog

from gateway.errors import StorageError
from gateway.model import Membership, TokenRecord
from gateway.store import Database

log = structlog.get_logger(__name__)


class TokenCache:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._tokens: dict[str, Membership] = {}
        self._active: dict[str, datetime] = {}

    async def load(self) -> None:
        rows = await self._db.fetchall("SELECT token, membership_id, membership_name FROM tokens")
        self._tokens = {t: Membership(mid, name) for t, mid, name in rows}
        rows = await self._db.fetchall("SELECT membership_id, valid_until FROM active")
        self._active = {mid: datetime.fromisoformat(until) for mid, until in rows}
        log.info("token_cache_loaded", tokens=len(self._tokens), active=len(self._active))

    # --- the tap path: memory only ----------------------------------------------------

    def lookup(self, token: str) -> Membership | None:
        return self._tokens.get(token)

    def checked_in_until(self, membership_id: str, now: datetime | None = None) -> datetime | None:
        until = self._active.get(membership_id)
        if until is None or until <= (now or datetime.now(UTC)):
            return None
        return until

    def __len__(self) -> int:
        return len(self._tokens)

    # --- writes: disk first, then the mirror -------------------------------------------

    async def replace_all(self, records: Iterable[TokenRecord]) -> tuple[int, int]:
        """Make the cache exactly the API's list (tokens removed upstream stop working).
        Returns (added, removed)."""
        fresh = {r.token: r.membership for r in records}
        try:
            async with self._db.transaction() as tx:
                await tx.execute("DELETE FROM tokens")
                await tx.executemany(
                    "INSERT INTO tokens (token, membership_id, membership_name) VALUES (?, ?, ?)",
                    [(t, m.id, m.name) for t, m in fresh.items()],
                )
        except sqlite3.Error as exc:
            raise StorageError(f"token cache: cannot store the synced list: {exc}") from exc
        added = len(fresh.keys() - self._tokens.keys())
        removed = len(self._tokens.keys() - fresh.keys())
        self._tokens = fresh
        return added, removed

    async def add(self, token: str, membership: Membership) -> None:
        """A token registered here (captive portal) before the next sync shows it."""
        try:
            await self._db.execute(
                "INSERT OR REPLACE INTO tokens (token, membership_id, membership_name) "
                "VALUES (?, ?, ?)",
                (token, membership.id, membership.name),
            )
        except sqlite3.Error as exc:
            raise StorageError(f"token cache: cannot store a token: {exc}") from exc
        self._tokens[token] = membership

    async def mark_checked_in(self, membership_id: str, valid_until: datetime) -> None:
        self._active[membership_id] = valid_until
        try:
            await self._db.execute(
                "INSERT OR REPLACE INTO active (membership_id, valid_until) VALUES (?, ?)",
                (membership_id, valid_until.astimezone(UTC).isoformat()),
            )
        except sqlite3.Error as exc:
            # Memory still knows; losing this row only costs one API call after a restart.
            log.warning("active_store_failed", membership_id=membership_id, error=str(exc))

    async def mark_checked_out(self, membership_id: str) -> None:
        self._active.pop(membership_id, None)
        try:
            await self._db.execute("DELETE FROM active WHERE membership_id = ?", (membership_id,))
        except sqlite3.Error as exc:
            log.warning("active_store_failed", membership_id=membership_id, error=str(exc))

    async def prune_active(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        self._active = {m: u for m, u in self._active.items() if u > now}
        try:
            await self._db.execute("DELETE FROM active WHERE valid_until <= ?", (now.isoformat(),))
        except sqlite3.Error as exc:
            log.warning("active_prune_failed", error=str(exc))
