"""The authorised devices, in SQLite (``portal.sqlite`` in the state directory).

The kernel's set forgets everything on reboot; this file is what the firewall is
rebuilt from when the gateway starts. An in-memory mirror answers the hot path (every
probe asks whether its device is let out) without a thread hop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from gateway.errors import StorageError

FILENAME = "portal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS authorised (
    mac TEXT PRIMARY KEY,
    until REAL NOT NULL,          -- Unix seconds
    ips TEXT NOT NULL DEFAULT '', -- client addresses seen, space-separated
    membership_id TEXT,
    source TEXT NOT NULL          -- 'portal' or 'presence'
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Authorisation:
    mac: str
    until: datetime
    source: str
    ips: tuple[str, ...] = ()
    membership_id: str | None = None

    def seconds_left(self, now: datetime) -> float:
        return (self.until - now).total_seconds()


class DeviceStore:
    def __init__(self, db: aiosqlite.Connection, rows: Iterable[Authorisation]) -> None:
        self._db = db
        self._mirror = {a.mac: a for a in rows}

    @classmethod
    async def open(cls, state_dir: Path) -> DeviceStore:
        path = state_dir / FILENAME
        try:
            await asyncio.to_thread(state_dir.mkdir, parents=True, exist_ok=True)
            db = await aiosqlite.connect(path)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"{path}: cannot open: {exc}") from exc
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.executescript(_SCHEMA)
            async with db.execute(
                "SELECT mac, until, ips, membership_id, source FROM authorised"
            ) as cursor:
                rows = [
                    Authorisation(
                        mac=mac,
                        until=datetime.fromtimestamp(until, UTC),
                        source=source,
                        ips=tuple(ips.split()),
                        membership_id=membership_id,
                    )
                    async for mac, until, ips, membership_id, source in cursor
                ]
        except sqlite3.Error as exc:
            await db.close()
            raise StorageError(f"{path}: unreadable: {exc}") from exc
        return cls(db, rows)

    async def close(self) -> None:
        await self._db.close()

    def get(self, mac: str) -> Authorisation | None:
        return self._mirror.get(mac)

    def until(self, mac: str, now: datetime) -> datetime | None:
        """When ``mac``'s authorisation ends, or None when it is not let out now."""
        found = self._mirror.get(mac)
        return found.until if found is not None and found.until > now else None

    def all(self) -> list[Authorisation]:
        return sorted(self._mirror.values(), key=lambda a: a.until)

    def next_expiry(self) -> datetime | None:
        return min((a.until for a in self._mirror.values()), default=None)

    async def put(self, auth: Authorisation) -> Authorisation:
        """Store ``auth``, keeping addresses seen before for the same device."""
        old = self._mirror.get(auth.mac)
        if old is not None:
            auth = replace(auth, ips=tuple(dict.fromkeys((*auth.ips, *old.ips)))[:8])
        await self._write(
            "INSERT OR REPLACE INTO authorised (mac, until, ips, membership_id, source) "
            "VALUES (?, ?, ?, ?, ?)",
            (auth.mac, auth.until.timestamp(), " ".join(auth.ips), auth.membership_id, auth.source),
        )
        self._mirror[auth.mac] = auth
        return auth

    async def delete(self, mac: str) -> Authorisation | None:
        await self._write("DELETE FROM authorised WHERE mac = ?", (mac,))
        return self._mirror.pop(mac, None)

    async def _write(self, sql: str, params: tuple[object, ...]) -> None:
        try:
            await self._db.execute(sql, params)
            await self._db.commit()
        except sqlite3.Error as exc:
            raise StorageError(f"{FILENAME}: write failed: {exc}") from exc
