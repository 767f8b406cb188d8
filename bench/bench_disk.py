"""Bytes a running gateway writes to its state directory (SD card wear, issue 10 case 8).

``python -m gateway run`` as a real process, its state directory on this machine's disk
(ext4: tmpfs writes would not be counted), a line reader on a pty, the simulated Cobot
in this process. ``write_bytes`` of ``/proc/PID/io`` is what the process caused to be
sent to the storage layer (counted when pages are dirtied). Reported:

- idle: one window with the default token sync (every 300 s: none in the window), one
  with syncs every 10 s; an idle hour = the first rate x 60 + 12 syncs (the default
  interval). Target: at most 64 KiB per idle hour.
- per tap: admitted check-ins of distinct members, delivered at once (outbox row, its
  delivery bookkeeping, the "checked in today" row).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import tty
from pathlib import Path

from bench.common import REPO, gateway_process
from gateway.log import configure
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim

IDLE_WINDOW = 60.0  # seconds per idle window
SETTLE = 5.0  # after start: the first sync, the first status and checkpoint
TAPS = 40
TARGET = 64 * 1024  # bytes per idle hour


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/PID/io (task I/O accounting off?)")


def _config(folder: Path, base_url: str, port: str, sync: float) -> Path:
    cfg = folder / "config.toml"
    cfg.write_text(f"""
[gateway]
state_dir = "{folder / "state"}"
log_format = "json"
log_level = "warning"
token_sync_interval = {sync}

[cobot]
base_url = "{base_url}"
check_in_rpm = 10000
default_rpm = 10000

[[readers]]
name = "front"
type = "serial"
protocol = "line"
port = "{port}"
debounce = 0.0
""")
    return cfg


async def _window(base_url: str, folder: Path, sync: float) -> int:
    master, slave = os.openpty()
    tty.setraw(master)
    try:
        cfg = _config(folder, base_url, os.ttyname(slave), sync)
        async with gateway_process(cfg, ready_events=[], token=ADMIN_TOKEN) as proc:
            await asyncio.sleep(SETTLE)
            before = write_bytes(proc.pid)
            await asyncio.sleep(IDLE_WINDOW)
            return write_bytes(proc.pid) - before
    finally:
        os.close(master)
        os.close(slave)


async def _taps(base_url: str, folder: Path, tokens: list[str]) -> float:
    master, slave = os.openpty()
    tty.setraw(master)
    try:
        cfg = _config(folder, base_url, os.ttyname(slave), 300.0)
        async with gateway_process(cfg, ready_events=[], token=ADMIN_TOKEN) as proc:
            await asyncio.sleep(SETTLE)
            before = write_bytes(proc.pid)
            for token in tokens:
                os.write(master, f"{token}\n".encode())
                await asyncio.sleep(0.25)
            await asyncio.sleep(3.0)  # deliveries done
            return (write_bytes(proc.pid) - before) / len(tokens)
    finally:
        os.close(master)
        os.close(slave)


async def _run() -> None:
    configure("warning", "console")
    space = demo_space()
    space.rate_limit.enabled = False
    tokens = []
    for i in range(TAPS):
        token = f"0C{i:08X}"
        space.add_member(f"Bench {i}", f"bench{i}@example.com", "pw", tokens=[token])
        tokens.append(token)
    async with run_sim(space) as base_url:
        with tempfile.TemporaryDirectory(dir=REPO / "bench") as a:
            idle = await _window(base_url, Path(a), 300.0)
        with tempfile.TemporaryDirectory(dir=REPO / "bench") as b:
            syncing = await _window(base_url, Path(b), 10.0)
        with tempfile.TemporaryDirectory(dir=REPO / "bench") as c:
            per_tap = await _taps(base_url, Path(c), tokens)
    syncs = IDLE_WINDOW / 10.0
    per_sync = max(0.0, (syncing - idle) / syncs)
    hour = idle * (3600 / IDLE_WINDOW) + per_sync * 12
    verdict = "within" if hour <= TARGET else "OVER"
    print("| measure | bytes |")
    print("|---|---|")
    print(f"| idle, {IDLE_WINDOW:.0f} s window, no sync | {idle} |")
    print(f"| one token sync ({len(space.list_tokens())} tokens, unchanged) | {per_sync:.0f} |")
    print(f"| **idle hour** (x60 + 12 syncs) | **{hour:.0f}** ({hour / 1024:.1f} KiB) |")
    print(f"| per admitted tap (check-in delivered), mean of {TAPS} | {per_tap:.0f} |")
    print()
    print(f"Target: at most {TARGET // 1024} KiB per idle hour: {verdict}.")


def main() -> None:
    asyncio.run(_run())
