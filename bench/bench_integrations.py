"""Issue 17 benchmarks: what metrics and MQTT cost the tap path (latency with them on vs
off, as a ratio of medians), and RSS with everything on.

    .venv/bin/python -m bench integrations

Needs Debian's ``mosquitto`` (the benchmark starts its own on loopback).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import tty
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from bench.common import gateway_process, median, pct, rss_mib, sim_process
from gateway.app import Gateway
from gateway.config import parse_config
from gateway.demo import DemoDoor as NullDoor
from gateway.model import Direction
from gateway.readers.base import make_tap
from gateway.sim.seed import ADMIN_TOKEN, RDM_TOKEN

TAPS = 2000
ROUNDS = 5


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _broker(tmp: Path) -> Iterator[int]:
    port = _port()
    conf = tmp / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{user}")
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(250):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait()


def _config(state: Path, base_url: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "gateway": {"state_dir": str(state), "log_level": "error", "name": "bench"},
        "cobot": {"base_url": base_url, "check_in_rpm": 10000, "default_rpm": 10000},
        "readers": [{"name": "front", "type": "keyboard", "door": "front"}],
        "doors": [{"name": "front", "type": "command", "command": ["true"]}],
        **extra,
    }


@contextlib.asynccontextmanager
async def _gateway(base_url: str, extra: dict[str, Any]) -> AsyncIterator[Gateway]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config(_config(Path(tmp), base_url, extra), "bench")
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


async def _cached_taps(gw: Gateway) -> list[float]:
    """Wall time (ms) of ``decide`` for cached re-entries, hooks included (a decision's
    own ``latency_ms`` ends at the door, before the hooks run): the path where the hooks
    weigh most. Every ``sleep(0)`` lets the MQTT bridge send what the taps queued."""
    door = NullDoor()
    out = []
    for i in range(TAPS):
        # The reader "front" has the door "front": events go to both event topics.
        tap = make_tap("front", RDM_TOKEN, Direction.IN)
        started = time.perf_counter()
        await gw.decider.decide(tap, door)
        out.append((time.perf_counter() - started) * 1000)
        if i % 50 == 0:
            await asyncio.sleep(0)
    return out


async def latency(base_url: str, broker: int) -> None:
    on = {"metrics": {"port": _port()}, "mqtt": {"host": "127.0.0.1", "port": broker}}
    lat: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(ROUNDS):  # interleaved: this machine's noise hits both alike
        for name, extra in (("off", {}), ("on", on)):
            async with _gateway(base_url, extra) as gw:
                if gw.mqtt is not None:
                    while gw.mqtt.state.value != "ready":  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
                gw.metrics.set_doors({"front": "front"})
                await _cached_taps(gw)  # warm up
                lat[name].extend(await _cached_taps(gw))
    off, onl = median(lat["off"]), median(lat["on"])
    print("| cached decision, door and hooks (wall time of decide) | p50 | p99 |")
    print("|---|---|---|")
    for name in ("off", "on"):
        p50, p99 = pct(lat[name], 50), pct(lat[name], 99)
        print(f"| metrics + MQTT {name}, {TAPS * ROUNDS} taps | {p50:.4f} ms | {p99:.4f} ms |")
    print()
    extra_us = (onl - off) * 1000
    print(f"Latency ratio on/off (medians): **{onl / off:.2f}x** ({extra_us:.1f} µs per tap).")
    print()


async def rss_all_on(base_url: str, broker: int) -> None:
    rss = []
    for _ in range(3):
        master, slave = os.openpty()
        tty.setraw(master)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "gw.toml"
            cfg.write_text(f"""
[gateway]
state_dir = "{tmp}/state"
log_format = "json"
name = "bench"
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
[portal]
space_name = "Bench"
interface = "lo"
listen = ["127.0.0.1"]
port = {_port()}
firewall = false
[metrics]
port = {_port()}
[mqtt]
host = "127.0.0.1"
port = {broker}
""")
            ready = (
                b'"event": "ready"',
                b'"serial_reader_ready"',
                b'"mqtt_ready"',
                b'"metrics_listening"',
            )
            async with gateway_process(cfg, ready_events=ready, token=ADMIN_TOKEN) as proc:
                await asyncio.sleep(3)
                rss.append(rss_mib(proc.pid))
        os.close(master)
        os.close(slave)
    print(
        f"RSS with a serial reader, the portal (no firewall), metrics and MQTT: median "
        f"**{median(rss):.1f} MiB** (target <= 60 MiB; the admin page is not in this "
        "build yet)."
    )
    print()


async def _main() -> None:
    if shutil.which("mosquitto") is None:
        print("mosquitto is not installed (make system-deps): skipped")
        return
    with tempfile.TemporaryDirectory() as tmp, _broker(Path(tmp)) as broker:
        async with sim_process("--no-rate-limit") as base_url:
            await latency(base_url, broker)
            await rss_all_on(base_url, broker)


def main() -> None:
    from gateway.log import configure

    configure("error", "json")
    asyncio.run(_main())
