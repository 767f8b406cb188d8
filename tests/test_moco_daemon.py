"""The daemon as a subprocess: one reader recording to Cobot and MOCO. A member who is
also staff taps once: the door opens, Cobot has the check-in, MOCO the presence."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tty
from pathlib import Path

import pytest

from gateway.moco_sim import ACCOUNT_KEY, demo_moco, run_moco_sim
from gateway.readers.serial.frames import encode_rdm6300
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from tests.configs import daemon_config
from tests.daemon import Daemon

pytestmark = [pytest.mark.real, pytest.mark.timeout(90)]

TOKEN = "0A1B2C3D4E"  # a demo member (Cobot) and MOCO user 933590696
USER = 933590696


async def test_one_tap_checks_in_at_cobot_and_clocks_in_at_moco(tmp_path: Path) -> None:
    space, moco = demo_space(), demo_moco()
    master, slave = os.openpty()
    tty.setraw(master)
    door_log = tmp_path / "door.log"
    async with run_sim(space) as cobot_url, run_moco_sim(moco) as moco_url:
        cfg = daemon_config(
            tmp_path,
            cobot_url,
            f'name = "front"\ntype = "serial"\nport = "{os.ttyname(slave)}"\n'
            'record = ["cobot", "moco"]',
            door_log=door_log,
            extra=f"""
[moco]
base_url = "{moco_url}"
min_interval = 60

[[moco.users]]
token = "{TOKEN.lower()}"
user_id = {USER}
""",
        )
        daemon = Daemon(cfg, {"COBOT_ACCESS_TOKEN": ADMIN_TOKEN, "MOCO_API_KEY": ACCOUNT_KEY})
        try:
            await daemon.start()
            await daemon.wait_for("serial_reader_ready")
            await daemon.wait_for("token_sync")
            os.write(master, encode_rdm6300(bytes.fromhex(TOKEN)) * 2)  # held: it repeats
            tap = await daemon.wait_for("tap")
            assert tap["outcome"] == "opened-online" and tap["opened"]
            clocked = await daemon.wait_for("clocked_in")
            # A touch if the tap's clock was synchronised; else (this container has no
            # NTP: the clock is trusted once an API's Date header agrees) written with
            # the tap's corrected time. Either way one presence, opened now.
            assert clocked["how"] in ("touch", "written with the tap's time")
            assert clocked["user_id"] == USER
            await daemon.wait_for("delivered")  # the Cobot check-in
            day = moco.clock.today()
            assert [to for _, to in moco.intervals(USER, day)] == [None]
            assert door_log.read_text().count("opened") == 1
            assert [r for r in space.requests if r.method == "POST" and r.status == 201]
            # `status` shows who is clocked in today, the name redacted.
            async with asyncio.timeout(20):
                while True:
                    out = await status(cfg)
                    if f"clocked in today: user {USER}" in out:
                        break
                    await asyncio.sleep(0.3)
            assert "(******oe)" in out and "Doe" not in out
            assert await daemon.stop(signal.SIGTERM) == 0
        finally:
            await daemon.kill()
            os.close(master)
            os.close(slave)
    logs = daemon.log() + json.dumps(daemon.events)
    assert ACCOUNT_KEY not in logs and TOKEN not in logs


async def status(cfg: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "status",
        "--config",
        str(cfg),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return out.decode()
