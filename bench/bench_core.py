"""Issue 2 benchmarks: tap-to-door decision latency, decisions per second on one core,
idle RSS with one serial reader, and time from start to ready.

    make bench            # or: .venv/bin/python -m bench core
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import tty
from pathlib import Path

from bench.common import gateway_process, median, pct, rss_mib, sim_process
from gateway.app import Gateway
from gateway.config import parse_config
from gateway.decide import Decision
from gateway.demo import DemoDoor as NullDoor  # a door that only records nothing
from gateway.model import Direction, TokenFormat
from gateway.readers.base import make_tap
from gateway.readers.serial.frames import Em4100Parser, encode_rdm6300
from gateway.readers.tokens import format_token
from gateway.sim.seed import ADMIN_TOKEN, RDM_TOKEN

CACHED_TAPS = 3000
ONLINE_TAPS = 300
FRAMES = 20000
RUNS = 5


def _config(state: Path, base_url: str) -> dict[str, object]:
    return {
        "gateway": {"state_dir": str(state), "log_level": "error"},
        # Limits far above the sim's so the benchmark measures the gateway, not pacing.
        "cobot": {"base_url": base_url, "check_in_rpm": 10000, "default_rpm": 10000},
        "doors": [{"name": "front", "type": "command", "command": ["true"]}],
    }


@contextlib.asynccontextmanager
async def _gateway(base_url: str):  # type: ignore[no-untyped-def]
    from gateway.log import configure

    configure("error", "json")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config(_config(Path(tmp), base_url), "bench")
        gw = Gateway(cfg, ADMIN_TOKEN, doors={"front": NullDoor()}, readers=[])
        task = asyncio.create_task(gw.run())
        await gw.ready.wait()
        await gw.sync.sync_once()
        try:
            yield gw
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def latency(base_url: str) -> None:
    async with _gateway(base_url) as gw:
        door = NullDoor()
        member = gw.cache.lookup(RDM_TOKEN)
        assert member is not None
        online: list[Decision] = []
        for _ in range(ONLINE_TAPS):
            await gw.attendance.checked_out(member.id)  # force a preview every time
            online.append(await gw.decider.decide(make_tap("front", RDM_TOKEN, Direction.IN), door))
            await asyncio.sleep(0.002)  # let the background check-in go out
        cached = [
            await gw.decider.decide(make_tap("front", RDM_TOKEN, Direction.IN), door)
            for _ in range(CACHED_TAPS)
        ]
    assert all(d.opened for d in online + cached)
    own = [d.latency_ms - (d.preview_ms or 0) for d in online]
    rtt = [d.preview_ms or 0 for d in online]
    lat_cached = [d.latency_ms for d in cached]
    print("| tap-to-door decision | p50 | p99 |")
    print("|---|---|---|")
    print(
        f"| cached re-entry (no API call), {CACHED_TAPS} taps | {pct(lat_cached, 50):.3f} ms "
        f"| {pct(lat_cached, 99):.3f} ms |"
    )
    print(
        f"| online: preview round trip to the simulator, {ONLINE_TAPS} taps "
        f"| {pct(rtt, 50):.2f} ms | {pct(rtt, 99):.2f} ms |"
    )
    print(
        f"| online: the gateway's own time besides the preview "
        f"| {pct(own, 50):.2f} ms | {pct(own, 99):.2f} ms |"
    )
    print()


async def throughput(base_url: str) -> None:
    """RDM6300 bytes -> frames -> tokens -> cached decisions, on this one core."""
    async with _gateway(base_url) as gw:
        door = NullDoor()
        member = gw.cache.lookup(RDM_TOKEN)
        assert member is not None
        stream = encode_rdm6300(bytes.fromhex(RDM_TOKEN)) * FRAMES
        rates = []
        for _ in range(RUNS):
            parser = Em4100Parser()
            started = time.perf_counter()
            decided = 0
            for i in range(0, len(stream), 4096):
                for frame in parser.feed(stream[i : i + 4096]):
                    token = format_token(TokenFormat.HEX, frame.raw)
                    await gw.decider.decide(make_tap("front", token, Direction.IN), door)
                    decided += 1
            rates.append(decided / (time.perf_counter() - started))
    print(
        f"Frames parsed and decided (cached path) per second, one core: median "
        f"**{median(rates):,.0f}/s** over {RUNS} runs of {FRAMES} (target >= 5,000)."
    )
    print()


async def idle_and_start(base_url: str) -> None:
    rss, ready = [], []
    for _ in range(RUNS):
        master, slave = os.openpty()
        tty.setraw(master)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "gw.toml"
            cfg.write_text(f"""
[gateway]
state_dir = "{tmp}/state"
log_format = "json"
[cobot]
base_url = "{base_url}"
[[readers]]
name = "front"
type = "serial"
port = "{os.ttyname(slave)}"
door = "front"
[[doors]]
name = "front"
type = "command"
command = ["true"]
""")
            started = time.perf_counter()
            ready_events = (b'"event": "ready"', b'"serial_reader_ready"')
            async with gateway_process(cfg, ready_events=ready_events, token=ADMIN_TOKEN) as proc:
                ready.append(time.perf_counter() - started)
                await asyncio.sleep(3)  # idle: token sync done, reader waiting
                rss.append(rss_mib(proc.pid))
        os.close(master)
        os.close(slave)
    print(
        f"Start to ready (process exec -> readers and cache up): median "
        f"**{median(ready) * 1000:.0f} ms** (target <= 1 s)."
    )
    print(f"Idle RSS with one serial reader: median **{median(rss):.1f} MiB** (target <= 45 MiB).")
    print()


async def _main() -> None:
    async with sim_process("--no-rate-limit") as base_url:
        await latency(base_url)
        await throughput(base_url)
        await idle_and_start(base_url)


def main() -> None:
    asyncio.run(_main())
