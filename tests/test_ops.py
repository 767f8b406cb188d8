"""Operating the queue: disk full, the bound, and the CLI against a running daemon."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sqlite3
import tty
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.model import Outcome
from gateway.readers.serial.frames import encode_rdm6300
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from gateway.sim.seed import ADA, NFC_TOKEN, PASS_TOKEN, RDM_TOKEN
from gateway.store import DB_NAME
from tests.daemon import Daemon
from tests.harness import rig
from tests.test_crash import config as crash_config


async def test_disk_full_keeps_deciding_doors_and_says_so(tmp_path: Path) -> None:
    async with rig(tmp_path, decision_deadline=0.3) as r:
        r.space.faults.set("error", status=503)  # offline: every admit must be queued
        db = r.gateway.outbox._db
        pages = await db.fetchone("PRAGMA page_count")
        assert pages is not None
        # SQLite's own "database or disk is full", on the daemon's real connection.
        await db.execute(f"PRAGMA max_page_count = {pages[0]}")
        outcomes = []
        for _ in range(40):  # enough rows to need a new page
            await r.gateway.attendance.checked_out(ADA)
            outcomes.append((await r.tap(RDM_TOKEN)).outcome)
        assert set(outcomes) == {Outcome.OPENED_OFFLINE}  # the door kept working
        assert r.gateway.decider.storage_error is not None
        assert "disk is full" in r.gateway.decider.storage_error
        assert "full" in json.dumps(r.gateway.status())
        # Space again: the next tap is queued and the error clears.
        await db.execute("PRAGMA max_page_count = 1073741823")
        await r.gateway.attendance.checked_out(ADA)
        await r.tap(RDM_TOKEN)
        assert r.gateway.decider.storage_error is None
        row = await db.fetchone("PRAGMA integrity_check")
        assert row == ("ok",)


async def test_queue_bound_refuses_new_entries_but_keeps_the_door(tmp_path: Path) -> None:
    async with rig(tmp_path, decision_deadline=0.3) as r:
        r.gateway.outbox._max = 1
        r.space.faults.set("error", status=503)
        first = await r.tap(RDM_TOKEN)
        second = await r.tap(NFC_TOKEN)
        assert first.opened and second.opened
        assert r.gateway.outbox.depth == 1
        assert "max_entries" in (r.gateway.decider.storage_error or "")


@pytest.mark.real
async def test_status_and_queue_commands_while_the_daemon_runs(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(master)
    space = demo_space()
    async with run_sim(space) as base_url:
        cfg = crash_config(tmp_path, base_url, os.ttyname(slave))
        daemon = Daemon(cfg, {"COBOT_ACCESS_TOKEN": ADMIN_TOKEN})
        await daemon.start()
        try:
            await daemon.wait_for("token_sync")
            await daemon.wait_for("serial_reader_ready")
            space.faults.set("error", status=503)
            for token in (RDM_TOKEN, PASS_TOKEN):
                os.write(master, encode_rdm6300(bytes.fromhex(token)) * 2)  # held: it repeats
                await daemon.wait_for(
                    lambda e, t=token: (
                        e.get("event") == "tap" and e.get("token", "").endswith(t[-2:])
                    )
                )
            out = io.StringIO()
            assert await main(["queue", "list", "--config", str(cfg)], out) == 0
            listing = out.getvalue()
            assert listing.count("check_in") == 2
            assert RDM_TOKEN not in listing  # redacted
            first_id = int(listing.splitlines()[1].split()[0])
            out = io.StringIO()
            assert await main(["queue", "drop", str(first_id), "--config", str(cfg)], out) == 0
            out = io.StringIO()
            assert await main(["status", "--config", str(cfg)], out) == 0
            text = out.getvalue()
            assert "reader front: ready" in text
            assert "queue: 1 waiting" in text
            assert "api: offline (Cobot does not answer)" in text
            assert "queue: 1 waiting" in text and "1 dropped" in text
            out = io.StringIO()
            assert await main(["status", "--json", "--config", str(cfg)], out) == 0
            report = json.loads(out.getvalue())
            assert report["queue"]["depth"] == 1
            assert {g["group"] for g in report["daemon"]["rate_limits"]} == {"check_ins", "default"}
            out = io.StringIO()
            assert await main(["queue", "retry", "99999", "--config", str(cfg)], out) == 1
            assert "entry 99999: no waiting or failed entry with this id" in out.getvalue()
            space.faults.clear()
            with sqlite3.connect(tmp_path / "state" / DB_NAME) as db:
                async with asyncio.timeout(30):
                    while db.execute(
                        "SELECT COUNT(*) FROM outbox WHERE state = 'pending' OR state = 'sending'"
                    ).fetchone()[0]:
                        await asyncio.sleep(0.2)
            assert space.check_ins_of(ADA) == []  # dropped by the operator: not delivered
        finally:
            await daemon.kill()
            os.close(master)
            os.close(slave)
