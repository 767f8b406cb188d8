"""Shared helpers for the portal tests: a portal on loopback against the simulated
Cobot server, a firewall that records what it was told, and a movable clock."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from gateway.cobot.client import CobotClient
from gateway.cobot.ratelimit import Group, RateLimiter
from gateway.config.model import PortalSection
from gateway.portal.neighbours import StaticNeighbours
from gateway.portal.service import PortalService
from gateway.sim.seed import ADMIN_TOKEN, demo_space
from gateway.sim.server import run_sim
from gateway.sim.space import SimSpace

# Loopback addresses stand for LAN clients; each has its own MAC in the static table.
CLIENTS = {
    "127.0.0.1": "02:00:00:00:00:01",
    "127.0.0.2": "02:00:00:00:00:02",
    "127.0.0.3": "02:00:00:00:00:03",
    "127.0.0.4": "02:00:00:00:00:04",
}
UNKNOWN_CLIENT = "127.0.0.9"  # no neighbour entry


class Clock:
    def __init__(self, start: datetime | None = None) -> None:
        self.value = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += timedelta(seconds=seconds)


@dataclass
class RecordingFirewall:
    """Stands in for nft in tests that are about the web side (the netns tests drive
    the real one). Keeps the same semantics: the authorised set with expiry times."""

    clock: Clock
    installed: list[list[tuple[str, float]]] = field(default_factory=list)
    allowed: dict[str, datetime] = field(default_factory=dict)
    events: list[tuple[str, object]] = field(default_factory=list)
    fail: bool = False

    async def install(self, elements: Sequence[tuple[str, float]]) -> None:
        self.installed.append(list(elements))
        self.allowed = {m: self.clock() + timedelta(seconds=s) for m, s in elements}

    async def allow(self, mac: str, seconds: float) -> None:
        if self.fail:
            from gateway.portal.firewall import FirewallError

            raise FirewallError("nft failed: simulated")
        self.allowed[mac] = self.clock() + timedelta(seconds=seconds)
        self.events.append(("allow", mac))

    async def revoke(self, mac: str) -> None:
        self.allowed.pop(mac, None)
        self.events.append(("revoke", mac))

    async def forget_connections(self, ips: Sequence[str]) -> None:
        self.events.append(("forget", tuple(ips)))


def portal_config(**overrides: object) -> PortalSection:
    values: dict[str, object] = {
        "space_name": "Co-Up <Test> & Friends",
        "interface": "lan0",
        "listen": ("127.0.0.1",),
        "port": 0,
        "firewall": False,
    }
    values.update(overrides)
    return PortalSection(**values)  # type: ignore[arg-type]


@dataclass
class Portal:
    service: PortalService
    url: str
    space: SimSpace
    firewall: RecordingFirewall
    clock: Clock
    signed_in: list[tuple[str, object]]

    def session(self, ip: str = "127.0.0.1", **headers: str) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(ip, 0), force_close=True),
            # Cookies for an IP-address host (the portal) need the "unsafe" jar.
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            headers=headers,
        )


@contextlib.asynccontextmanager
async def running_portal(
    state_dir: Path,
    *,
    space: SimSpace | None = None,
    clock: Clock | None = None,
    firewall: RecordingFirewall | None = None,
    limiter: RateLimiter | None = None,
    checked_in_until: Callable[[str], datetime | None] | None = None,
    **cfg: object,
) -> AsyncIterator[Portal]:
    space = space or demo_space()
    space.rate_limit.enabled = False
    clock = clock or Clock()
    firewall = firewall or RecordingFirewall(clock)
    signed_in: list[tuple[str, object]] = []

    async def on_signed_in(mac: str, check_in: object) -> None:
        signed_in.append((mac, check_in))

    async with run_sim(space) as sim_url:
        limiter = limiter or RateLimiter({Group.CHECK_INS: 100_000, Group.DEFAULT: 100_000})
        async with CobotClient(sim_url, ADMIN_TOKEN, limiter) as client:
            service = PortalService(
                portal_config(**cfg),
                client,
                state_dir,
                on_signed_in=on_signed_in,
                neighbours=StaticNeighbours(CLIENTS),
                firewall=firewall,
                clock=clock,
                checked_in_until=checked_in_until,
            )
            task = asyncio.create_task(service.run(), name="portal")
            started = asyncio.create_task(service.wait_started())
            await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                started.cancel()
                task.result()  # raises why it did not start
            host, port = service.addresses[0]
            try:
                yield Portal(service, f"http://{host}:{port}", space, firewall, clock, signed_in)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: str) -> str:
    found = _CSRF.search(page)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def sign_in(
    session: aiohttp.ClientSession, url: str, login: str, password: str, **extra: str
) -> tuple[int, str]:
    async with session.get(url + "/") as page:
        token = csrf_of(await page.text())
    form = {"csrf": token, "login": login, "password": password, **extra}
    async with session.post(url + "/sign-in", data=form, allow_redirects=False) as resp:
        return resp.status, await resp.text()
