"""The simulated Cobot server: how much it costs the tests and benchmarks that lean on it.

Sequential preview check-ins over loopback (one keep-alive connection: what a gateway
under test does), the same with 8 concurrent clients, and the token list of a space with
10,000 tokens (what a token sync fetches). Medians of several rounds; this machine is
noisy, so compare ratios rather than absolute figures.
"""

from __future__ import annotations

import asyncio
import resource
import statistics
import subprocess
import sys
import time

import aiohttp

from gateway.log import configure as configure_logging
from gateway.sim import SimSpace, demo_space, run_sim
from gateway.sim.seed import ADMIN_TOKEN, RDM_TOKEN

ROUNDS = 5
SEQUENTIAL = 300
CONCURRENT = 8
PER_CLIENT = 100
BIG_SPACE = 10_000
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def _previews(http: aiohttp.ClientSession, url: str, n: int) -> list[float]:
    took = []
    for _ in range(n):
        start = time.perf_counter()
        async with http.post(
            url + "/api/check_ins?preview=true", json={"token": RDM_TOKEN}, headers=HEADERS
        ) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        took.append(time.perf_counter() - start)
    return took


async def _round_sequential() -> tuple[float, float]:
    space = demo_space()
    space.rate_limit.enabled = False
    async with run_sim(space) as url, aiohttp.ClientSession() as http:
        await _previews(http, url, 10)  # warm the connection
        start = time.perf_counter()
        took = await _previews(http, url, SEQUENTIAL)
        elapsed = time.perf_counter() - start
    return SEQUENTIAL / elapsed, statistics.median(took) * 1000


async def _round_concurrent() -> float:
    space = demo_space()
    space.rate_limit.enabled = False
    async with run_sim(space) as url, aiohttp.ClientSession() as http:
        await _previews(http, url, 10)
        start = time.perf_counter()
        await asyncio.gather(*(_previews(http, url, PER_CLIENT) for _ in range(CONCURRENT)))
        elapsed = time.perf_counter() - start
    return CONCURRENT * PER_CLIENT / elapsed


def _big_space() -> SimSpace:
    space = demo_space()
    for i in range(BIG_SPACE):
        space.add_member(f"Member {i}", f"m{i}@example.com", "pw", tokens=[f"{i:010X}"])
    return space


async def _round_token_list(space: SimSpace) -> tuple[float, int]:
    async with run_sim(space) as url, aiohttp.ClientSession() as http:
        start = time.perf_counter()
        async with http.get(url + "/api/check_in_tokens", headers=HEADERS) as resp:
            body = await resp.read()
        return (time.perf_counter() - start) * 1000, len(body)


def _import_ms() -> float:
    code = "import time; t=time.perf_counter(); import gateway.sim; print(time.perf_counter()-t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout) * 1000


def main() -> None:
    configure_logging("warning")  # the simulator logs every request at debug
    seq = [asyncio.run(_round_sequential()) for _ in range(ROUNDS)]
    conc = [asyncio.run(_round_concurrent()) for _ in range(ROUNDS)]
    build_start = time.perf_counter()
    big = _big_space()
    build_ms = (time.perf_counter() - build_start) * 1000
    listing = [asyncio.run(_round_token_list(big)) for _ in range(ROUNDS)]
    imports = [_import_ms() for _ in range(ROUNDS)]
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    rate_seq = statistics.median(r for r, _ in seq)
    print("| measure | median |")
    print("|---|---|")
    print(f"| preview check-ins, 1 client, sequential | {rate_seq:,.0f} req/s |")
    print(f"| ... latency per request | {statistics.median(m for _, m in seq):.2f} ms |")
    rate_conc = statistics.median(conc)
    print(
        f"| preview check-ins, {CONCURRENT} concurrent clients | {rate_conc:,.0f} req/s "
        f"({rate_conc / rate_seq:.2f}x sequential) |"
    )
    print(f"| build a space of {BIG_SPACE:,} members and tokens | {build_ms:,.0f} ms |")
    size_kib = listing[0][1] / 1024
    print(
        f"| GET /api/check_in_tokens, {BIG_SPACE:,} tokens ({size_kib:,.0f} KiB) | "
        f"{statistics.median(ms for ms, _ in listing):,.1f} ms |"
    )
    print(f"| import gateway.sim (cold process) | {statistics.median(imports):.0f} ms |")
    print(f"| peak RSS of this benchmark process | {rss_mib:.0f} MiB |")


if __name__ == "__main__":
    main()
