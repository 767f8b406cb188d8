"""The daemon with a front door (check-in) and a meeting room (booking): two readers on
real ptys, the simulated Cobot over HTTP, ``status`` reading the room, SIGTERM."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import tty
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.readers.serial.frames import encode_rdm6300
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from gateway.sim.seed import ADA, GRACE, MEETING_ROOM, NFC_TOKEN, RDM_TOKEN
from gateway.status import StatusUnavailable, ask, socket_path
from tests.configs import daemon_config
from tests.daemon import Daemon
from tests.harness import eventually

pytestmark = pytest.mark.real


def write_config(tmp_path: Path, base_url: str, front: str, room: str) -> Path:
    reader = f'name = "front"\ntype = "serial"\nport = "{front}"\nprotocol = "rdm6300"'
    cfg = daemon_config(tmp_path, base_url, reader, door_log=tmp_path / "front.log")
    room_log = tmp_path / "room.log"
    with cfg.open("a") as f:
        f.write(f"""
[[doors]]
name = "room-1"
type = "command"
command = ["sh", "-c", "echo opened >> {room_log}"]
access = "booking"
resource_id = "{MEETING_ROOM}"
grace_before = 600
grace_after = 300
check_in = true
walk_up_minutes = 0

[[readers]]
name = "room-1"
door = "room-1"
type = "serial"
port = "{room}"
protocol = "line"

[bookings]
refresh_interval = 300
""")
    return cfg


async def test_front_door_checks_in_room_door_opens_for_the_booker(tmp_path: Path) -> None:
    front_m, front_s = os.openpty()
    room_m, room_s = os.openpty()
    for fd in (front_m, room_m):
        tty.setraw(fd)
    space = demo_space()  # the Meeting Room is booked for Ada from 15 minutes ago
    async with run_sim(space) as url:
        cfg = write_config(tmp_path, url, os.ttyname(front_s), os.ttyname(room_s))
        daemon = Daemon(cfg, {"COBOT_ACCESS_TOKEN": ADMIN_TOKEN})
        await daemon.start()
        try:
            await daemon.wait_for("token_sync")
            await daemon.wait_for("bookings_refreshed")
            await eventually(
                lambda: (
                    sum(1 for e in daemon.events if e.get("event") == "serial_reader_ready") == 2
                )
            )
            os.write(room_m, f"{NFC_TOKEN}\n".encode())  # Grace: no booking
            refused = await daemon.wait_for("tap")
            assert refused["outcome"] == "no-booking" and refused["membership_id"] == GRACE
            assert "Meeting Room is booked by someone else until" in refused["reason"]
            os.write(room_m, f"{RDM_TOKEN}\n".encode())  # Ada: her booking
            ada = await daemon.wait_for(lambda e: e.get("event") == "tap" and e is not refused)
            assert ada["outcome"] == "opened-booking" and ada["membership_id"] == ADA
            room_log = tmp_path / "room.log"
            await eventually(lambda: room_log.exists() and room_log.read_text() == "opened\n")
            # check_in = true: entering on the booking checked her in at Cobot
            await eventually(lambda: len(space.check_ins_of(ADA)) == 1)
            # the front door is a check-in door as before, and re-entry needs no API call
            os.write(front_m, encode_rdm6300(bytes.fromhex(RDM_TOKEN)) * 2)  # a held card
            front = await daemon.wait_for(
                lambda e: e.get("event") == "tap" and e.get("reader") == "front"
            )
            assert front["outcome"] == "opened-cached"
            assert RDM_TOKEN not in daemon.log() and NFC_TOKEN not in daemon.log()
            # status shows the room, its snapshot's age and the current booking
            async with asyncio.timeout(10):
                while await _room_age(tmp_path) is None:
                    await asyncio.sleep(0.1)
            out = io.StringIO()
            assert await main(["status", "--config", str(cfg)], out) == 0
            line = next(ln for ln in out.getvalue().splitlines() if "room room-1" in ln)
            assert "(Meeting Room): snapshot" in line and "current" in line
            assert "Ada Lovelace" not in out.getvalue()  # member names redacted
            assert await daemon.stop(signal.SIGTERM) == 0
            assert daemon.events[-1]["event"] == "stopped"
        finally:
            await daemon.kill()
            for fd in (front_m, front_s, room_m, room_s):
                os.close(fd)


async def _room_age(tmp_path: Path) -> object:
    """The room's snapshot age as the running daemon tells it (the status socket)."""
    try:
        status = await ask(socket_path(tmp_path / "state"))
    except StatusUnavailable:
        return None
    return status.get("rooms", {}).get("room-1", {}).get("snapshot_age_s")
