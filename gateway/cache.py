"""The token cache: which token belongs to which membership (``GET /api/check_in_tokens``).

It lives in SQLite (so it survives restarts) with a hot in-memory mirror: the tap path
reads only the mirror (a dict lookup), never the database. Writes go to SQLite first and
then to the mirror, so the mirror never claims what the disk does not hold. Who is
checked in is not kept here but in ``gateway.attendance``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

import structlog

from gateway.errors import StorageError
from gateway.model import Membership, TokenRecord
from gateway.store import Database

log = structlog.get_logger(__name__)


class TokenCache:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._tokens: dict[str, Membership] = {}

    async def load(self) -> None:
        rows = await self._db.fetchall("SELECT token, membership_id, membership_name FROM tokens")
        self._tokens = {t: Membership(mid, name) for t, mid, name in rows}
        log.info("token_cache_loaded", tokens=len(self._tokens))

    # --- the tap path: memory only ----------------------------------------------------

    def lookup(self, token: str) -> Membership | None:
        return self._tokens.get(token)

    def __len__(self) -> int:
        return len(self._tokens)

    # --- writes: disk first, then the mirror -------------------------------------------

    async def replace_all(self, records: Iterable[TokenRecord]) -> tuple[int, int]:
        """Make the cache exactly the API's list (tokens removed upstream stop working).
        Returns (added, removed)."""
        fresh = {r.token: r.membership for r in records}
        if fresh == self._tokens:
            # Nothing changed (the usual case): write nothing. An idle gateway must not
            # wear out its SD card with a sync every few minutes.
            return 0, 0
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
