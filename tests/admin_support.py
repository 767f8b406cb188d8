"""A gateway with the admin page on loopback, wired to the simulated Cobot (and, in
``staff_rig``, the simulated MOCO)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from gateway.admin.password import write_hash_file
from gateway.app import Gateway
from gateway.config import parse_config
from gateway.decide import Decision
from gateway.model import Direction, RecordKind
from gateway.outbox import State
from gateway.readers.base import make_tap
from gateway.sim import ADMIN_TOKEN, SimSpace, demo_space, run_sim
from gateway.sim.seed import GRACE, NFC_TOKEN
from tests.harness import RecordingDoor, gateway_config
from tests.moco_helpers import MocoRig, moco_rig

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AdminRig:
    space: SimSpace
    gateway: Gateway
    door: RecordingDoor
    url: str
    password_file: Path

    async def tap(self, token: str, direction: Direction = Direction.IN) -> Decision:
        tap = make_tap("front", token, direction, self.gateway.clock)
        return await self.gateway.decider.decide(tap, self.door)

    async def add_failed(self) -> int:
        """A queue entry Cobot refused (Grace's check-in), as the drainer leaves it."""
        return await self.gateway.outbox.add(
            RecordKind.CHECK_IN,
            token=NFC_TOKEN,
            membership_id=GRACE,
            reader="front",
            tapped_at=datetime.now(UTC),
            state=State.FAILED,
            last_error="refused: test",
        )

    def client(self) -> aiohttp.ClientSession:
        # unsafe=True: aiohttp's jar keeps no cookies for IP-address hosts otherwise.
        return aiohttp.ClientSession(
            self.url, cookie_jar=aiohttp.CookieJar(unsafe=True), raise_for_status=False
        )


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


async def login(client: aiohttp.ClientSession, password: str = PASSWORD) -> aiohttp.ClientResponse:
    async with client.get("/login") as r:
        token = csrf_of(await r.text())
    async with client.post(
        "/login", data={"csrf": token, "password": password}, allow_redirects=False
    ) as r:
        await r.read()
        return r


@contextlib.asynccontextmanager
async def admin_rig(
    tmp_path: Path,
    *,
    password: str | None = PASSWORD,
    serial_port: str | None = None,
    tables: dict[str, Any] | None = None,
    **admin: Any,
) -> AsyncIterator[AdminRig]:
    """``serial_port``: a line reader "front" on that tty (else no reader: taps are
    decided directly with ``AdminRig.tap``). ``tables``: more config tables (``mqtt``)."""
    space = demo_space()
    password_file = tmp_path / "admin.hash"
    if password is not None:
        write_hash_file(password_file, password)
    port = free_port()
    async with run_sim(space) as base_url:
        data = gateway_config(tmp_path / "state", base_url)
        data["admin"] = {"port": port, "password_file": str(password_file), **admin}
        data.update(tables or {})
        if serial_port is not None:
            data["readers"] = [
                {
                    "name": "front",
                    "type": "serial",
                    "port": serial_port,
                    "protocol": "line",
                    "door": "front",
                    "debounce": 0.2,  # the same card again soon after: a new tap
                }
            ]
        cfg = parse_config(data, "test")
        door = RecordingDoor()
        readers = None if serial_port is not None else []
        gw = Gateway(cfg, ADMIN_TOKEN, doors={"front": door}, readers=readers)
        task = asyncio.create_task(gw.run())
        await asyncio.wait_for(gw.ready.wait(), 5)
        await gw.sync.sync_once()
        if password is not None:
            async with asyncio.timeout(5):
                while gw.admin is None or not gw.admin.addresses:
                    await asyncio.sleep(0.01)
        try:
            yield AdminRig(space, gw, door, f"http://127.0.0.1:{port}", password_file)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@dataclass
class StaffRig(MocoRig):
    url: str = ""

    def client(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            self.url, cookie_jar=aiohttp.CookieJar(unsafe=True), raise_for_status=False
        )


@contextlib.asynccontextmanager
async def staff_rig(tmp_path: Path) -> AsyncIterator[StaffRig]:
    """The admin page with ``[moco]``: the simulated Cobot and MOCO over real HTTP, a
    clock the test moves (MOCO's follows it); staff taps through ``StaffRig.tap``."""
    password_file = tmp_path / "admin.hash"
    write_hash_file(password_file, PASSWORD)
    port = free_port()
    admin = {"port": port, "password_file": str(password_file)}
    async with moco_rig(tmp_path, admin=admin) as r:
        yield StaffRig(
            r.moco, r.cobot, r.gateway, r.door, r.clock, r.decisions, url=f"http://127.0.0.1:{port}"
        )
