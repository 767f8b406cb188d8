"""The presence table on disk: one SQLite file per MAC reader in the state directory.

The in-memory table in ``presence.py`` is the truth while running; this file is what a
restart starts from and what an admin can read (``sqlite3 presence-wifi.sqlite 'select *
from devices'``). Writes are batched: the reader flushes the rows changed since the last
flush, in one transaction, every few seconds. A crash loses at most that many seconds of
``last_seen`` updates, which a device's next packet repairs.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from pathlib import Path

import aiosqlite
import structlog

from gateway.errors import StorageError
from gateway.readers.mac.packets import Source
from gateway.readers.mac.presence import Changes, Device, MemberStay

log = structlog.get_logger(__name__)

SCHEMA_VERSION = 2
# SQLite on an SD card can stall for seconds while the card erases a block.
STORE_TIMEOUT = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    mac TEXT PRIMARY KEY,          -- aa:bb:cc:dd:ee:ff
    first_seen REAL NOT NULL,      -- unix time
    last_seen REAL NOT NULL,
    arrived REAL NOT NULL,         -- start of the current or last stay
    present INTEGER NOT NULL,
    source TEXT NOT NULL,          -- arp | dhcp: what it was last heard by
    ip TEXT,
    hostname TEXT,
    client_id TEXT,
    token TEXT,                    -- the Cobot token it is registered under, if any
    member_id TEXT
);
CREATE TABLE IF NOT EXISTS member_stays (
    member_id TEXT PRIMARY KEY,
    token TEXT NOT NULL
);
"""
# Version 1 kept its own "announced today" date and same-day check-outs; who is checked
# in or out is Attendance's alone now (gateway/attendance.py), in the gateway database.
_FROM_V1 = """
BEGIN;
ALTER TABLE member_stays DROP COLUMN announced;
DROP TABLE IF EXISTS checkouts;
PRAGMA user_version = 2;
COMMIT;
"""
_UPSERT_DEVICE = (
    "INSERT OR REPLACE INTO devices (mac, first_seen, last_seen, arrived, present, source, "
    "ip, hostname, client_id, token, member_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
_SELECT_DEVICES = (
    "SELECT mac, first_seen, last_seen, arrived, present, source, ip, hostname, client_id, "
    "token, member_id FROM devices"
)
_UPSERT_STAY = "INSERT OR REPLACE INTO member_stays (member_id, token) VALUES (?,?)"


def presence_path(state_dir: Path, reader: str) -> Path:
    """``presence-<reader>.sqlite``; the name is made safe for a file name."""
    return state_dir / f"presence-{re.sub(r'[^A-Za-z0-9_.-]', '_', reader)}.sqlite"


class PresenceStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._db: aiosqlite.Connection | None = None

    @property
    def path(self) -> Path:
        return self._path

    async def open(self) -> tuple[list[Device], list[MemberStay]]:
        """Open (creating the file and schema if new) and load the saved table.

        A file SQLite calls corrupt (an SD card's parting gift) is moved aside and the
        table starts empty: presence rebuilds itself from the next packets, whereas a
        reader that refused to start would check nobody in.
        """
        try:
            return await self._open()
        except StorageError as exc:
            cause = exc.__cause__
            if not isinstance(cause, sqlite3.DatabaseError) or cause.sqlite_errorname not in (
                "SQLITE_NOTADB",
                "SQLITE_CORRUPT",
            ):
                raise
            aside = await asyncio.to_thread(self._move_aside)
            log.warning(
                "mac_presence_table_corrupt",
                path=str(self._path),
                moved_to=str(aside),
                error=str(cause),
            )
            return await self._open()

    def _move_aside(self) -> Path:
        aside = self._path.with_name(f"{self._path.name}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self._path}{suffix}").rename(f"{aside}{suffix}")
        return aside

    async def _open(self) -> tuple[list[Device], list[MemberStay]]:
        try:
            async with asyncio.timeout(STORE_TIMEOUT):
                await asyncio.to_thread(self._path.parent.mkdir, parents=True, exist_ok=True)
                self._db = await aiosqlite.connect(self._path)
                await self._db.execute("PRAGMA journal_mode=WAL")
                await self._db.execute("PRAGMA synchronous=NORMAL")  # presence is not billing
                async with self._db.execute("PRAGMA user_version") as cur:
                    row = await cur.fetchone()
                version = row[0] if row else 0
                self._check_version(version)
                if version == 1:
                    await self._db.executescript(_FROM_V1)
                await self._db.executescript(_SCHEMA)
                await self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                await self._db.commit()
                return await self._load(self._db)
        except (OSError, sqlite3.Error, TimeoutError) as exc:
            await self.aclose()
            raise StorageError(f"{self._path}: cannot open the presence table: {exc}") from exc
        except BaseException:
            await self.aclose()
            raise

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self._path}: written by a newer checkin-gateway (schema {version})"
            )

    async def _load(self, db: aiosqlite.Connection) -> tuple[list[Device], list[MemberStay]]:
        async with db.execute(_SELECT_DEVICES) as cur:
            rows = await cur.fetchall()
        devices = []
        for r in rows:
            try:
                source = Source(r[5])
            except ValueError:
                log.warning("mac_presence_row_skipped", path=str(self._path), source=r[5])
                continue
            devices.append(
                Device(
                    mac=r[0],
                    first_seen=r[1],
                    last_seen=r[2],
                    arrived=r[3],
                    present=bool(r[4]),
                    source=source,
                    ip=r[6],
                    hostname=r[7],
                    client_id=r[8],
                    token=r[9],
                    member_id=r[10],
                )
            )
        async with db.execute("SELECT member_id, token FROM member_stays") as cur:
            stays = [MemberStay(r[0], r[1]) for r in await cur.fetchall()]
        return devices, stays

    async def save(self, changes: Changes) -> None:
        """Write the changed rows in one transaction."""
        if not changes:
            return
        if self._db is None:
            raise StorageError(f"{self._path}: the presence table is not open")
        devices = [
            (d.mac, d.first_seen, d.last_seen, d.arrived, int(d.present), str(d.source), d.ip,
             d.hostname, d.client_id, d.token, d.member_id)
            for d in changes.devices
        ]  # fmt: skip
        stays = [(s.member_id, s.token) for s in changes.members]
        db = self._db
        try:
            async with asyncio.timeout(STORE_TIMEOUT):
                await db.executemany(_UPSERT_DEVICE, devices)
                await db.executemany("DELETE FROM devices WHERE mac = ?", _rows(changes.forgotten))
                await db.executemany(_UPSERT_STAY, stays)
                await db.executemany(
                    "DELETE FROM member_stays WHERE member_id = ?", _rows(changes.gone)
                )
                await db.commit()
        except (OSError, sqlite3.Error, TimeoutError) as exc:
            await _rollback(db)
            raise StorageError(f"{self._path}: cannot save the presence table: {exc}") from exc

    async def aclose(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                async with asyncio.timeout(STORE_TIMEOUT):
                    await db.close()
            except (sqlite3.Error, TimeoutError):
                pass  # closing a broken connection: nothing left to save


def _rows(keys: list[str]) -> list[tuple[str]]:
    return [(k,) for k in keys]


async def _rollback(db: aiosqlite.Connection) -> None:
    try:
        async with asyncio.timeout(STORE_TIMEOUT):
            await db.rollback()
    except (sqlite3.Error, TimeoutError):
        pass
