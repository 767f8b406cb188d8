from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.errors import StorageError
from gateway.readers.mac.packets import Source
from gateway.readers.mac.presence import Changes, Device, MemberStay
from gateway.readers.mac.store import SCHEMA_VERSION, PresenceStore, presence_path

LAPTOP = "00:16:3e:00:00:01"
PRINTER = "00:16:3e:00:00:02"


def device(mac: str, **kw: object) -> Device:
    base: dict[str, object] = {
        "mac": mac,
        "first_seen": 1000.0,
        "last_seen": 2000.5,
        "arrived": 1500.0,
        "present": True,
        "source": Source.DHCP,
    }
    return Device(**{**base, **kw})  # type: ignore[arg-type]


def changes(
    devices: list[Device] = (),  # type: ignore[assignment]
    forgotten: list[str] = (),  # type: ignore[assignment]
    members: list[MemberStay] = (),  # type: ignore[assignment]
    gone: list[str] = (),  # type: ignore[assignment]
) -> Changes:
    return Changes(list(devices), list(forgotten), list(members), list(gone))


def test_path_is_per_reader_and_safe(tmp_path: Path) -> None:
    assert presence_path(tmp_path, "wifi") == tmp_path / "presence-wifi.sqlite"
    assert presence_path(tmp_path, "../x y") == tmp_path / "presence-.._x_y.sqlite"


async def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state" / "presence.sqlite"  # the directory is created
    store = PresenceStore(path)
    assert await store.open() == ([], [])
    laptop = device(
        LAPTOP,
        ip="10.0.0.5",
        hostname="alice-laptop",
        client_id="01" + "00163e000001",
        token="00-16-3E-00-00-01",
        member_id="m-alice",
    )
    printer = device(PRINTER, present=False, source=Source.ARP)
    stay = MemberStay("m-alice", "00-16-3E-00-00-01")
    await store.save(changes([laptop, printer], members=[stay]))
    await store.aclose()

    again = PresenceStore(path)
    devices, stays = await again.open()
    assert sorted(devices, key=lambda d: d.mac) == [laptop, printer]
    assert stays == [MemberStay("m-alice", "00-16-3E-00-00-01")]

    laptop.last_seen = 3000.0
    await again.save(changes([laptop], forgotten=[PRINTER], gone=["m-alice"]))
    await again.aclose()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT mac, last_seen FROM devices").fetchall() == [(LAPTOP, 3000.0)]
        assert db.execute("SELECT count(*) FROM member_stays").fetchone() == (0,)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_version_1_table_loses_its_own_check_in_memory(tmp_path: Path) -> None:
    """Version 1 kept "announced today" and same-day check-outs; Attendance owns those now:
    the columns go, devices and stays stay."""
    path = tmp_path / "presence.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE devices (mac TEXT PRIMARY KEY, first_seen REAL NOT NULL, "
            "last_seen REAL NOT NULL, arrived REAL NOT NULL, present INTEGER NOT NULL, "
            "source TEXT NOT NULL, ip TEXT, hostname TEXT, client_id TEXT, token TEXT, "
            "member_id TEXT);"
            "CREATE TABLE member_stays (member_id TEXT PRIMARY KEY, token TEXT NOT NULL, "
            "announced TEXT);"
            "CREATE TABLE checkouts (member_id TEXT PRIMARY KEY, day TEXT NOT NULL);"
            "INSERT INTO devices VALUES ('00:16:3e:00:00:01', 1, 2, 1, 1, 'arp', NULL, NULL, "
            "NULL, '00:16:3e:00:00:01', 'm-alice');"
            "INSERT INTO member_stays VALUES ('m-alice', '00:16:3e:00:00:01', '2030-03-01');"
            "INSERT INTO checkouts VALUES ('m-bob', '2030-03-01');"
            "PRAGMA user_version = 1;"
        )
    db.close()
    store = PresenceStore(path)
    devices, stays = await store.open()
    await store.aclose()
    assert [d.mac for d in devices] == [LAPTOP]
    assert stays == [MemberStay("m-alice", LAPTOP)]
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = [r[1] for r in db.execute("PRAGMA table_info(member_stays)")]
        version = db.execute("PRAGMA user_version").fetchone()
    db.close()
    assert "checkouts" not in tables
    assert columns == ["member_id", "token"]
    assert version == (SCHEMA_VERSION,)


async def test_nothing_to_save_touches_nothing(tmp_path: Path) -> None:
    store = PresenceStore(tmp_path / "p.sqlite")
    await store.save(changes())  # not even open: an empty flush is free
    await store.open()
    await store.save(changes())
    await store.aclose()


async def test_save_when_not_open_is_a_storage_error(tmp_path: Path) -> None:
    store = PresenceStore(tmp_path / "p.sqlite")
    with pytest.raises(StorageError, match="not open"):
        await store.save(changes([device(LAPTOP)]))


async def test_unwritable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = PresenceStore(blocker / "presence.sqlite")  # a file where a directory should be
    with pytest.raises(StorageError, match="cannot open the presence table") as info:
        await store.open()
    assert isinstance(info.value.__cause__, OSError)


async def test_newer_schema_is_refused_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StorageError, match="newer checkin-gateway"):
        await PresenceStore(path).open()
    assert path.exists()


async def test_corrupt_file_is_moved_aside_and_the_table_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    path.write_bytes(b"this is not a database, it is what an SD card left" * 100)
    store = PresenceStore(path)
    assert await store.open() == ([], [])
    await store.save(changes([device(LAPTOP)]))
    await store.aclose()
    aside = [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1
    assert (tmp_path / aside[0]).read_bytes().startswith(b"this is not a database")


async def test_bad_rows_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    store = PresenceStore(path)
    await store.open()
    await store.save(changes([device(LAPTOP), device(PRINTER)]))
    await store.aclose()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE devices SET source = 'carrier-pigeon' WHERE mac = ?", (PRINTER,))
    devices, _ = await PresenceStore(path).open()
    assert [d.mac for d in devices] == [LAPTOP]


async def test_failed_save_rolls_back(tmp_path: Path) -> None:
    """A save that fails halfway leaves the file as it was (one transaction)."""
    path = tmp_path / "p.sqlite"
    store = PresenceStore(path)
    await store.open()
    await store.save(changes([device(LAPTOP)]))
    bad = MemberStay("m-x", None, None)  # type: ignore[arg-type]  # token NOT NULL
    with pytest.raises(StorageError, match="cannot save"):
        await store.save(changes([device(PRINTER)], forgotten=[LAPTOP], members=[bad]))
    devices, stays = await store._load(store._db)  # type: ignore[arg-type]
    assert [d.mac for d in devices] == [LAPTOP]
    assert stays == []
    await store.aclose()
