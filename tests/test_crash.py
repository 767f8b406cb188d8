"""Crash safety of the offline queue: the gateway as a subprocess, the API down,
hundreds of taps through a real pty, SIGKILL at random instants and restarts, then the
API back: the simulated Cobot counts 0 lost and 0 doubled check-ins."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import tty
from pathlib import Path

import pytest

from gateway.readers.serial.frames import encode_rdm6300
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from gateway.store import DB_NAME
from tests.configs import daemon_config
from tests.daemon import Daemon

pytestmark = [pytest.mark.real, pytest.mark.timeout(240)]

MEMBERS = 300
RESTARTS = 6


def config(tmp_path: Path, base_url: str, port: str) -> Path:
    return daemon_config(
        tmp_path,
        base_url,
        f'name = "front"\ntype = "serial"\nport = "{port}"\ndebounce = 0.0',
        gateway="decision_deadline = 0.5",
        # Pacing is not under test here (test_drain.py does that): let the replay run fast.
        cobot="check_in_rpm = 10000\ndefault_rpm = 10000\nrequest_timeout = 2.0",
    )


async def test_sigkill_at_random_instants_loses_and_doubles_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    print(f"crash test seed: {seed} (CRASH_SEED={seed} to repeat)")
    rng = random.Random(seed)
    space = demo_space()
    space.rate_limit.enabled = False
    tokens = {}
    for i in range(MEMBERS):
        token = f"{0x0B00000000 + i:010X}"
        member = space.add_member(f"Member {i}", f"m{i}@example.com", "pw", tokens=[token])
        tokens[token] = member.id
    master, slave = os.openpty()
    tty.setraw(master)
    admitted: set[str] = set()
    pending = list(tokens)
    rng.shuffle(pending)
    async with run_sim(space) as base_url:
        cfg = config(tmp_path, base_url, os.ttyname(slave))
        env = {"COBOT_ACCESS_TOKEN": ADMIN_TOKEN}
        try:
            # First start with the API up: the token cache is synced, then the API "dies".
            daemon = Daemon(cfg, env)
            await daemon.start()
            await daemon.wait_for("token_sync")
            space.faults.set("error", status=503)
            for _ in range(RESTARTS):
                await daemon.wait_for("serial_reader_ready")
                size = rng.randint(30, 60)
                batch, pending = pending[:size], pending[size:]
                for token in batch:
                    os.write(master, encode_rdm6300(bytes.fromhex(token)) * 2)  # held: it repeats
                    await asyncio.sleep(rng.uniform(0, 0.004))
                # Kill once a random share of the batch was decided (so the test covers
                # hundreds of taps however loaded the machine is), at a random instant.
                decided = rng.randint(size // 3, size - 1)
                async with asyncio.timeout(30):
                    while sum(e.get("event") == "tap" for e in daemon.events) < decided:
                        await asyncio.sleep(0.005)
                await asyncio.sleep(rng.uniform(0, 0.05))
                await daemon.kill()  # SIGKILL, mid-whatever
                admitted |= {
                    e["membership_id"]
                    for e in daemon.events
                    if e.get("event") == "tap" and e.get("outcome") == "opened-offline"
                }
                daemon = Daemon(cfg, env)
                await daemon.start()
            await daemon.wait_for("serial_reader_ready")
            # The API comes back, and the replay itself is killed a few times: a check-in
            # sent whose answer never got recorded must be found, not sent again.
            space.faults.clear()
            db_path = tmp_path / "state" / DB_NAME
            for _ in range(3):
                await daemon.wait_for("delivered", timeout=30)
                await asyncio.sleep(rng.uniform(0, 0.2))
                await daemon.kill()
                daemon = Daemon(cfg, env)
                await daemon.start()
            async with asyncio.timeout(90):
                while _open_rows(db_path):
                    await asyncio.sleep(0.2)
            assert await daemon.stop(signal.SIGTERM) == 0
        finally:
            await daemon.kill()
            os.close(master)
            os.close(slave)
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = db.execute("SELECT membership_id, state FROM outbox").fetchall()
    queued = {m for m, _ in rows}
    assert {s for _, s in rows} == {"delivered"}, "every committed tap reached Cobot"
    checked_in = {m for m in tokens.values() if space.check_ins_of(m)}
    assert len(admitted) > 100, "the test must exercise hundreds of taps"
    assert admitted <= queued, "a tap that opened the door was not queued"
    assert queued == checked_in, "lost or extra check-ins"
    assert not space.doubled(), f"doubled: {space.doubled()}"


def _open_rows(db_path: Path) -> int:
    with sqlite3.connect(db_path, timeout=5) as db:
        return int(
            db.execute(
                "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')"
            ).fetchone()[0]
        )
