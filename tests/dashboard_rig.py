"""A running gateway whose ``/metrics`` the dashboard test and its screenshot scrape.

The real daemon (``python -m gateway run``) against the simulated Cobot over HTTP, with
``[metrics]`` on a loopback port of its own and two readers on real ptys: "front"
(RDM6300 frames, the check-in door) and "room-1" (text lines, a booking door on the
Meeting Room, booked for Ada). ``tap_round`` drives the traffic every panel shows:
opened (check-ins), refused and booking decisions, good, bad-checksum, ghost and phantom frames and
line noise; ``outage`` makes Cobot fail for a while (the breaker opens, doors decide
offline, check-ins queue, then drain).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from gateway.readers.serial.frames import encode_rdm6300
from gateway.sim import ADMIN_TOKEN, SimSpace, demo_space, run_sim
from gateway.sim.seed import MEETING_ROOM, NFC_TOKEN, NO_PASS_TOKEN, PASS_TOKEN, RDM_TOKEN
from tests.configs import daemon_config
from tests.daemon import Daemon
from tests.mqtt_broker import free_port

DEBOUNCE = 0.3  # seconds: the same card again after this is a new tap
ARRIVALS = 200  # members who come in once each, one a round: their check-ins


def arrival(n: int) -> str:
    """The card of the member who arrives in round ``n``."""
    return f"0C0000{n % ARRIVALS:04X}"


def frame(token: str) -> bytes:
    return encode_rdm6300(bytes.fromhex(token))


def bad_checksum(token: str) -> bytes:
    good = frame(token)
    return good[:-3] + (b"00" if good[-3:-1] != b"00" else b"11") + good[-1:]


@dataclass
class DashboardGateway:
    daemon: Daemon
    space: SimSpace
    metrics_port: int
    front: int  # the pty masters the test writes to
    room: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"

    async def card(self, token: str) -> None:
        """A card held on the front reader: two frames (the RDM6300's confirmed read)."""
        os.write(self.front, frame(token) + frame(token))
        await asyncio.sleep(DEBOUNCE + 0.05)

    async def tap_round(self, n: int) -> None:
        """One round of a morning at the door (about 2 s)."""
        os.write(self.front, b"\x00noise" + bad_checksum(RDM_TOKEN))
        await self.card(arrival(n))  # a member's first tap today: a check-in
        await self.card(RDM_TOKEN)  # Ada: online, then "still checked in today"
        await self.card(f"0BADC0DE{n % 256:02X}")  # nobody's card: refused
        if n % 2 == 0:
            await self.card(PASS_TOKEN if n % 4 == 0 else NO_PASS_TOKEN)
        os.write(self.front, frame("0000000000") * 2)  # a ghost id
        os.write(self.front, frame(f"0A0000F0{n % 256:02X}"))  # a phantom: read once
        os.write(self.room, b"\x01\x02noise\n")  # an unprintable line: garbage
        os.write(self.room, f"{RDM_TOKEN}\n".encode())  # Ada: her booking
        await asyncio.sleep(DEBOUNCE + 0.05)
        os.write(self.room, f"{NFC_TOKEN}\n".encode())  # Grace: no booking
        await asyncio.sleep(DEBOUNCE + 0.05)

    def outage(self, on: bool) -> None:
        """Cobot answers 503 to everything (on) or serves again (off)."""
        if on:
            self.space.faults.set("error", status=503)
        else:
            self.space.faults.clear()


def _config(tmp_path: Path, base_url: str, front: str, room: str, metrics_port: int) -> Path:
    reader = (
        f'name = "front"\ntype = "serial"\nport = "{front}"\nprotocol = "rdm6300"\n'
        f"debounce = {DEBOUNCE}"
    )
    extra = f"""
[[doors]]
name = "room-1"
type = "command"
command = ["true"]
access = "booking"
resource_id = "{MEETING_ROOM}"
walk_up_minutes = 0

[[readers]]
name = "room-1"
door = "room-1"
type = "serial"
port = "{room}"
protocol = "line"
debounce = {DEBOUNCE}

[bookings]
refresh_interval = 60

[metrics]
listen = ["127.0.0.1"]
port = {metrics_port}
"""
    return daemon_config(tmp_path, base_url, reader, gateway='name = "front-desk"', extra=extra)


@contextlib.asynccontextmanager
async def dashboard_gateway(tmp_path: Path) -> AsyncIterator[DashboardGateway]:
    ptys = [os.openpty() for _ in range(2)]
    for master, _ in ptys:
        tty.setraw(master)
    space = demo_space()
    for n in range(ARRIVALS):
        space.add_member(f"Member {n}", f"m{n}@example.com", "pw", tokens=[arrival(n)])
    try:
        async with run_sim(space) as base_url:
            port = free_port()
            names = [os.ttyname(slave) for _, slave in ptys]
            cfg = _config(tmp_path, base_url, names[0], names[1], port)
            daemon = Daemon(cfg, {"COBOT_ACCESS_TOKEN": ADMIN_TOKEN})
            await daemon.start()
            try:
                await daemon.wait_for("token_sync")
                await daemon.wait_for("bookings_refreshed")
                await daemon.wait_for("metrics_listening")
                for reader in ("front", "room-1"):
                    await daemon.wait_for(
                        lambda e, r=reader: (
                            e.get("event") == "serial_reader_ready" and e.get("reader") == r
                        )
                    )
                yield DashboardGateway(daemon, space, port, ptys[0][0], ptys[1][0])
            finally:
                space.faults.clear()
                with contextlib.suppress(Exception):
                    await daemon.stop()
                await daemon.kill()
    finally:
        for master, slave in ptys:
            os.close(master)
            os.close(slave)
