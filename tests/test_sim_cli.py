"""``python -m gateway.sim`` as a real process: prints its URL, serves, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp

from gateway.sim.seed import ADMIN_TOKEN, RDM_TOKEN

STARTUP = 20.0  # seconds; a cold interpreter on a busy machine


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.sim",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def start(*args: str) -> tuple[asyncio.subprocess.Process, list[str]]:
    proc = await spawn("--port", "0", *args)
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(STARTUP):
        while len(lines) < 2:
            line = await proc.stdout.readline()
            assert line, "the simulator exited before printing its URL"
            lines.append(line.decode().strip())
    return proc, lines


async def test_serves_until_sigterm() -> None:
    proc, lines = await start("--no-rate-limit")
    try:
        assert lines[0].startswith("Cobot simulator at http://127.0.0.1:")
        assert lines[1] == f"admin access token: {ADMIN_TOKEN}"
        url = lines[0].rsplit(" ", 1)[1]
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with aiohttp.ClientSession() as http:
            for _ in range(70):  # beyond 60/min: the limit is off
                async with http.get(url + "/api/check_in_tokens", headers=headers) as resp:
                    assert resp.status == 200
            async with http.post(
                url + "/api/check_ins", json={"token": RDM_TOKEN}, headers=headers
            ) as resp:
                assert resp.status == 201
    finally:
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(STARTUP):
            code = await proc.wait()
    assert code == 0


async def test_an_unknown_time_zone_is_a_clear_error() -> None:
    proc = await spawn("--timezone", "Mars/Olympus_Mons")
    async with asyncio.timeout(STARTUP):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    assert b"unknown time zone 'Mars/Olympus_Mons'" in err
