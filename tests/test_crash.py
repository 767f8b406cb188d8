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
                await _tap_then_kill(daemon, master, batch, rng, repeat=2)  # held: it repeats
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


async def _tap_then_kill(
    daemon: Daemon, master: int, batch: list[str], rng: random.Random, *, repeat: int = 1
) -> None:
    """Send the batch's cards through the pty; SIGKILL once a random share of it was
    decided (so the test covers many taps however loaded the machine is), at a random
    instant."""
    for token in batch:
        os.write(master, encode_rdm6300(bytes.fromhex(token)) * repeat)
        await asyncio.sleep(rng.uniform(0, 0.004))
    size = len(batch)
    decided = rng.randint(size // 3, size - 1)
    async with asyncio.timeout(30):
        while sum(e.get("event") == "tap" for e in daemon.events) < decided:
            await asyncio.sleep(0.005)
    await asyncio.sleep(rng.uniform(0, 0.05))
    await daemon.kill()  # SIGKILL, mid-whatever


def _open_rows(db_path: Path) -> int:
    with sqlite3.connect(db_path, timeout=5) as db:
        return int(
            db.execute(
                "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'sending')"
            ).fetchone()[0]
        )


# --- MOCO presences (issue 15): the same promise for staff taps --------------------

STAFF = 120


async def test_sigkill_during_moco_taps_and_replay_loses_and_doubles_no_presence(
    tmp_path: Path,
) -> None:
    from datetime import datetime, timedelta

    from gateway.moco_sim import ACCOUNT_KEY, MocoSpace, run_moco_sim

    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    print(f"moco crash test seed: {seed} (CRASH_SEED={seed} to repeat)")
    rng = random.Random(seed)
    moco = MocoSpace()
    moco.rate_limit.enabled = False  # pacing is not under test here (test_moco_records)
    users: dict[str, int] = {}
    now = datetime.now().astimezone()
    seeded: set[int] = set()
    for i in range(STAFF):
        token, user_id = f"{0x0C00000000 + i:010X}", 5000 + i
        moco.add_user(user_id, "Staff", f"Nr{i}")
        users[token] = user_id
        if i % 2 and now.hour >= 1:
            # Clocked in before the outage: their tap closes that presence (a PUT).
            moco.add_presence(user_id, now.date(), f"{now - timedelta(hours=1):%H:%M}")
            seeded.add(user_id)
    staff = "\n".join(f'[[moco.users]]\ntoken = "{t}"\nuser_id = {u}\n' for t, u in users.items())
    master, slave = os.openpty()
    tty.setraw(master)
    pending = list(users)
    rng.shuffle(pending)
    clocked: set[int] = set()
    async with run_sim(demo_space()) as base_url, run_moco_sim(moco) as moco_url:
        cfg = daemon_config(
            tmp_path,
            base_url,
            f'name = "front"\ntype = "serial"\nport = "{os.ttyname(slave)}"\n'
            'debounce = 0.0\nrecord = ["moco"]',
            gateway="decision_deadline = 0.5",
            extra=f'[moco]\nbase_url = "{moco_url}"\nrpm = 10000\nrequest_timeout = 2.0\n' + staff,
        )
        env = {"COBOT_ACCESS_TOKEN": ADMIN_TOKEN, "MOCO_API_KEY": ACCOUNT_KEY}
        daemon = Daemon(cfg, env)
        try:
            await daemon.start()
            moco.faults.set("error", status=503)  # MOCO is down while staff tap
            for _ in range(3):
                await daemon.wait_for("serial_reader_ready")
                size = rng.randint(25, 40)
                batch, pending = pending[:size], pending[size:]
                await _tap_then_kill(daemon, master, batch, rng, repeat=2)
                clocked |= {e["user_id"] for e in daemon.events if e.get("event") == "clocked_in"}
                clocked |= {e["user_id"] for e in daemon.events if e.get("event") == "clocked_out"}
                daemon = Daemon(cfg, env)
                await daemon.start()
            await daemon.wait_for("serial_reader_ready")
            # MOCO comes back; the replay is killed a few times mid-write.
            moco.faults.clear()
            db_path = tmp_path / "state" / DB_NAME
            for _ in range(3):
                await daemon.wait_for("moco_delivered", timeout=60)
                await asyncio.sleep(rng.uniform(0, 0.1))
                await daemon.kill()
                daemon = Daemon(cfg, env)
                await daemon.start()
            try:
                async with asyncio.timeout(90):
                    while _open_rows(db_path):
                        await asyncio.sleep(0.2)
            except TimeoutError:
                with sqlite3.connect(db_path) as db:
                    left = db.execute(
                        "SELECT id, state, attempts, last_error, clock FROM outbox "
                        "WHERE state IN ('pending', 'sending') LIMIT 5"
                    ).fetchall()
                raise AssertionError(f"still open: {left}\n{daemon.log()}") from None
            assert await daemon.stop(signal.SIGTERM) == 0
        finally:
            await daemon.kill()
            os.close(master)
            os.close(slave)
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT membership_id, state, tapped_at, last_error FROM outbox WHERE backend = 'moco'"
        ).fetchall()
    assert {s for _, s, _, _ in rows} == {"delivered"}, [r for r in rows if r[1] != "delivered"]
    queued = {int(m) for m, _, _, _ in rows}
    assert len(queued) == len(rows), "one tap per user: one row each"
    assert len(rows) > 50, "the test must exercise dozens of staff taps"
    assert clocked <= queued, "a tap that was told 'in/out' was not queued"
    assert moco.touches == 0, "a replay never touches"
    for m, _, tapped, _ in rows:
        user_id, minute = int(m), datetime.fromisoformat(tapped).astimezone().strftime("%H:%M")
        mine = moco.intervals(user_id, datetime.fromisoformat(tapped).astimezone().date())
        if user_id in seeded:
            assert len(mine) == 1 and mine[0][1] == minute, (user_id, mine, minute)
        else:
            assert mine == [(minute, None)], (user_id, mine, minute)
    untouched = set(users.values()) - queued
    for user_id in untouched:
        assert len(moco.of(user_id)) == (1 if user_id in seeded else 0)
