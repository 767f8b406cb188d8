"""The captive portal: sign-ins per second against the simulated Cobot (its rate limit
off), probe answers per second, and the time from a sign-in's submit to the first
packet the gateway forwards for that device (real nftables in network namespaces; needs
root, else that line says why it was skipped).

Everything runs on loopback or in namespaces this benchmark makes and removes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import structlog

from gateway.cobot.client import CobotClient
from gateway.cobot.ratelimit import Group, RateLimiter
from gateway.config.model import PortalSection
from gateway.portal.firewall import NoFirewall
from gateway.portal.neighbours import StaticNeighbours
from gateway.portal.service import PortalService
from gateway.sim.seed import ADMIN_TOKEN, demo_space
from gateway.sim.server import run_sim

SIGN_INS = 200
PROBES = 3000
CONCURRENCY = 8
ROUNDS = 3
RACES = 5
CLIENTS = 32  # loopback addresses 127.0.1.1.. standing for LAN devices
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _ip(i: int) -> str:
    return f"127.0.1.{i + 1}"


def _mac(i: int) -> str:
    return f"02:00:00:00:01:{i + 1:02x}"


@contextlib.asynccontextmanager
async def _portal(state_dir: Path):
    space = demo_space()
    space.rate_limit.enabled = False
    for w in range(CONCURRENCY):  # one member per client: as many people sign in at once
        space.add_member(f"Bench {w}", f"bench{w}@example.com", f"bench-{w}")
    async with run_sim(space) as url:
        limiter = RateLimiter({Group.CHECK_INS: 10**9, Group.DEFAULT: 10**9})
        async with CobotClient(url, ADMIN_TOKEN, limiter) as client:
            cfg = PortalSection(
                space_name="Bench",
                interface="lo",
                listen=("127.0.0.1",),
                port=0,
                firewall=False,
            )
            service = PortalService(
                cfg,
                client,
                state_dir,
                neighbours=StaticNeighbours({_ip(i): _mac(i) for i in range(CLIENTS)}),
                firewall=NoFirewall(),
            )
            task = asyncio.create_task(service.run())
            await service.wait_started()
            host, port = service.addresses[0]
            try:
                yield service, f"http://{host}:{port}"
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _session(i: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=(_ip(i), 0)),
        cookie_jar=aiohttp.CookieJar(unsafe=True),
    )


async def _forms(url: str, sessions: list[aiohttp.ClientSession]) -> list[dict[str, str]]:
    """Each client's sign-in form, fetched once while its device is captive."""
    forms = []
    for w, s in enumerate(sessions):
        async with s.get(url + "/") as page:
            found = _CSRF.search(await page.text())
        assert found is not None
        forms.append(
            {"csrf": found.group(1), "login": f"bench{w}@example.com", "password": f"bench-{w}"}
        )
    return forms


async def _sign_ins(
    url: str, total: int, sessions: list[aiohttp.ClientSession], forms: list[dict[str, str]]
) -> float:
    """Seconds for ``total`` sign-in form posts (preview + check-in + authorise each)."""
    per_worker = total // len(sessions)

    async def worker(s: aiohttp.ClientSession, form: dict[str, str]) -> None:
        for _ in range(per_worker):
            async with s.post(url + "/sign-in", data=form) as resp:
                assert resp.status == 200, resp.status
                await resp.read()

    start = time.perf_counter()
    await asyncio.gather(*(worker(s, f) for s, f in zip(sessions, forms, strict=True)))
    return time.perf_counter() - start


async def _probes(url: str, total: int, first_client: int) -> float:
    per_worker = total // CONCURRENCY
    headers = {"Host": "connectivitycheck.gstatic.com"}

    async def worker(w: int) -> None:
        async with _session(first_client + w) as s:
            for _ in range(per_worker):
                async with s.get(
                    url + "/generate_204", headers=headers, allow_redirects=False
                ) as resp:
                    assert resp.status in (204, 302)
                    await resp.read()

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    return time.perf_counter() - start


async def _loopback() -> list[str]:
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        async with _portal(Path(tmp)) as (service, url):
            sessions = [_session(w) for w in range(CONCURRENCY)]
            try:
                forms = await _forms(url, sessions)
                await _sign_ins(url, CONCURRENCY * 2, sessions, forms)  # warm up
                rates = [
                    SIGN_INS / await _sign_ins(url, SIGN_INS, sessions, forms)
                    for _ in range(ROUNDS)
                ]
            finally:
                for s in sessions:
                    await s.close()
            lines.append(
                f"| sign-ins per second (form post: preview + check-in + let out; "
                f"{CONCURRENCY} members at once) | {statistics.median(rates):,.0f} |"
            )
            # Devices 16..23 are let out (204), devices 24..31 are captive (302).
            until = service.now().replace(year=service.now().year + 1)
            for i in range(16, 24):
                await service.authorise(_mac(i), until)
            out = [PROBES / await _probes(url, PROBES, 16) for _ in range(ROUNDS)]
            captive = [PROBES / await _probes(url, PROBES, 24) for _ in range(ROUNDS)]
            lines.append(
                f"| probe answers per second, device let out (204) | "
                f"{statistics.median(out):,.0f} |"
            )
            lines.append(
                f"| probe answers per second, captive device (302 to the portal) | "
                f"{statistics.median(captive):,.0f} |"
            )
    return lines


def _namespaces() -> list[str]:
    from tests.portal_netns import LAN_IF, PORTAL_PORT, have_tools, network, wait_for_line

    ok, why = have_tools()
    if not ok:
        return [f"| submit to first forwarded packet | skipped: {why} |"]
    forwarded, page = [], []
    with tempfile.TemporaryDirectory() as tmp, network(clients=RACES) as net:
        internet = net.python(net.internet, "serve", "--tcp", "5000")
        wait_for_line(internet, "READY")
        gw = net.python(
            net.gateway,
            "gateway",
            "--state-dir",
            tmp,
            "--table",
            "portal_bench",
            "--interface",
            LAN_IF,
            "--port",
            str(PORTAL_PORT),
        )
        wait_for_line(gw, "READY")
        for i in range(1, RACES + 1):
            action = json.dumps(
                {
                    "do": "race",
                    "portal": f"http://{net.gateway_ip()}:{PORTAL_PORT}/",
                    "login": "ada@example.com",
                    "password": "ada-demo",
                    "host": net.internet_ip(),
                    "port": 5000,
                }
            )
            result = net.client_run(i, action)[0]
            if result.get("forwarded_after") is None:
                return [f"| submit to first forwarded packet | failed: {result} |"]
            forwarded.append(float(result["forwarded_after"]) * 1000)
            page.append(float(result["page_after"]) * 1000)
    return [
        f"| submit to first forwarded packet (median of {RACES}, nftables) | "
        f"{statistics.median(forwarded):.1f} ms |",
        f"| submit to the success page (same runs) | {statistics.median(page):.1f} ms |",
    ]


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    print("| measure | value |")
    print("|---|---|")
    for line in asyncio.run(_loopback()):
        print(line, flush=True)
    for line in _namespaces():
        print(line, flush=True)
    print(
        f"\nLoopback, this machine (2 shared cores); medians of {ROUNDS} rounds. The "
        "sign-in rate includes the simulated Cobot answering in the same process."
    )


if __name__ == "__main__":
    main()
