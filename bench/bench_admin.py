"""Issue 16 benchmarks: the tap path with the admin page open and streaming, and the
daemon's RSS with the admin page on.

    .venv/bin/python -m bench admin

Latency: the same gateway (simulated Cobot over HTTP, cached and online taps) with the
admin page off, then on with ``STREAMS`` signed-in pages holding ``/events`` open and
reading every tap; alternated ``RUNS`` times (this machine is noisy). RSS: ``gateway run``
idle, with and without ``[admin]``, after one page load.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import gateway_process, median, pct, rss_mib, sim_process
from gateway.admin.password import write_hash_file
from gateway.app import Gateway
from gateway.config import parse_config
from gateway.decide import Decision
from gateway.demo import DemoDoor as NullDoor
from gateway.model import Direction
from gateway.readers.base import make_tap
from gateway.sim.seed import ADMIN_TOKEN, RDM_TOKEN

CACHED_TAPS = 2000
ONLINE_TAPS = 200
STREAMS = 2
RUNS = 3
PASSWORD = "benchmark password"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(state: Path, base_url: str, admin: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "gateway": {"state_dir": str(state), "log_level": "error"},
        "cobot": {"base_url": base_url, "check_in_rpm": 10000, "default_rpm": 10000},
        "doors": [{"name": "front", "type": "command", "command": ["true"]}],
    }
    if admin is not None:
        data["admin"] = admin
    return data


async def _login(session: aiohttp.ClientSession) -> None:
    async with session.get("/login") as r:
        match = re.search(r'name="csrf" value="([^"]+)"', await r.text())
    assert match
    async with session.post("/login", data={"csrf": match.group(1), "password": PASSWORD}) as r:
        assert r.status == 200, r.status


async def _read(session: aiohttp.ClientSession, seen: list[int]) -> None:
    async with session.get("/events") as stream:
        async for line in stream.content:
            if line.startswith(b"event: tap"):
                seen[0] += 1


@contextlib.asynccontextmanager
async def _gateway(base_url: str, with_admin: bool) -> AsyncIterator[tuple[Gateway, list[int]]]:
    from gateway.log import configure

    configure("error", "json")
    with tempfile.TemporaryDirectory() as tmp:
        admin = None
        if with_admin:
            write_hash_file(Path(tmp) / "admin.hash", PASSWORD)
            admin = {"port": _port(), "password_file": f"{tmp}/admin.hash"}
        cfg = parse_config(_config(Path(tmp) / "state", base_url, admin), "bench")
        gw = Gateway(cfg, ADMIN_TOKEN, doors={"front": NullDoor()}, readers=[])
        task = asyncio.create_task(gw.run())
        await gw.ready.wait()
        await gw.sync.sync_once()
        seen = [0]
        readers: list[asyncio.Task[None]] = []
        sessions: list[aiohttp.ClientSession] = []
        try:
            if admin is not None:
                while gw.admin is None or not gw.admin.addresses:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                for _ in range(STREAMS):
                    session = aiohttp.ClientSession(
                        f"http://127.0.0.1:{admin['port']}",
                        cookie_jar=aiohttp.CookieJar(unsafe=True),
                    )
                    sessions.append(session)
                    await _login(session)
                    readers.append(asyncio.create_task(_read(session, seen)))
                while gw.admin.feed.streams < STREAMS:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            yield gw, seen
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            for session in sessions:
                await session.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _taps(base_url: str, with_admin: bool) -> tuple[list[float], list[float], int]:
    async with _gateway(base_url, with_admin) as (gw, seen):
        door = NullDoor()
        member = gw.cache.lookup(RDM_TOKEN)
        assert member is not None
        online: list[Decision] = []
        for _ in range(ONLINE_TAPS):
            await gw.attendance.checked_out(member.id)  # force a preview every time
            online.append(await gw.decider.decide(make_tap("front", RDM_TOKEN, Direction.IN), door))
            await asyncio.sleep(0.002)
        cached = [
            await gw.decider.decide(make_tap("front", RDM_TOKEN, Direction.IN), door)
            for _ in range(CACHED_TAPS)
        ]
        await asyncio.sleep(0.5)  # let the pages read the last events
        streamed = seen[0]
    own = [d.latency_ms - (d.preview_ms or 0) for d in online]
    return [d.latency_ms for d in cached], own, streamed


async def latency(base_url: str) -> None:
    results: dict[bool, list[tuple[float, float, float, float]]] = {False: [], True: []}
    streamed = []
    for _ in range(RUNS):
        for with_admin in (False, True):
            cached, own, seen = await _taps(base_url, with_admin)
            results[with_admin].append(
                (pct(cached, 50), pct(cached, 99), pct(own, 50), pct(own, 99))
            )
            if with_admin:
                streamed.append(seen)
    print("| tap-to-door (median of runs) | cached p50 | cached p99 | online own p50 | own p99 |")
    print("|---|---|---|---|---|")
    for with_admin, label in ((False, "admin page off"), (True, f"{STREAMS} pages streaming")):
        cols = [median([r[i] for r in results[with_admin]]) for i in range(4)]
        print(
            f"| {label} | {cols[0]:.3f} ms | {cols[1]:.3f} ms | {cols[2]:.2f} ms "
            f"| {cols[3]:.2f} ms |"
        )
    expected = (CACHED_TAPS + ONLINE_TAPS) * STREAMS
    print(
        f"\nTap events the open pages received: {min(streamed)}-{max(streamed)} of "
        f"{expected} per run (a slow page drops its oldest, never the door).\n"
    )


async def rss(base_url: str) -> None:
    values: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(RUNS):
        for with_admin in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                port = _port()
                admin = ""
                if with_admin:
                    write_hash_file(Path(tmp) / "admin.hash", PASSWORD)
                    admin = f'[admin]\nport = {port}\npassword_file = "{tmp}/admin.hash"\n'
                cfg = Path(tmp) / "gw.toml"
                cfg.write_text(
                    f'[gateway]\nstate_dir = "{tmp}/state"\nlog_format = "json"\n'
                    f'[cobot]\nbase_url = "{base_url}"\n'
                    '[[readers]]\nname = "front"\ntype = "keyboard"\ndoor = "front"\n'
                    '[[doors]]\nname = "front"\ntype = "command"\ncommand = ["true"]\n' + admin
                )
                events = [b'"event": "ready"'] + ([b'"admin_listening"'] if with_admin else [])
                async with gateway_process(cfg, ready_events=events, token=ADMIN_TOKEN) as proc:
                    if with_admin:
                        async with aiohttp.ClientSession(
                            f"http://127.0.0.1:{port}", cookie_jar=aiohttp.CookieJar(unsafe=True)
                        ) as session:
                            await _login(session)
                            async with session.get("/log") as r:
                                await r.read()
                    await asyncio.sleep(3)
                    values[with_admin].append(rss_mib(proc.pid))
    off, on = median(values[False]), median(values[True])
    print(
        f"Idle RSS, keyboard reader: **{off:.1f} MiB** without the admin page, "
        f"**{on:.1f} MiB** with it (after a login and a page), +{on - off:.1f} MiB."
    )
    print()


async def _main() -> None:
    async with sim_process("--no-rate-limit") as base_url:
        await latency(base_url)
        await rss(base_url)


def main() -> None:
    asyncio.run(_main())
