"""Shared pieces of the benchmarks: a simulated Cobot in its own process, statistics."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.asynccontextmanager
async def sim_process(*extra: str, prefix: Sequence[str] = ()) -> AsyncIterator[str]:
    """``python -m gateway.sim`` in its own process (so its work does not share our
    event loop), on a free loopback port; yields the base URL. ``prefix`` runs it through
    another command, e.g. ``ip netns exec NS``."""
    proc = await asyncio.create_subprocess_exec(
        *prefix,
        sys.executable,
        "-m",
        "gateway.sim",
        "--port",
        "0",
        *extra,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        match = re.search(r"http://[\w.:\[\]]+", line)
        assert match, f"simulator said {line!r}"
        yield match.group(0)
    finally:
        proc.terminate()
        await proc.wait()


@contextlib.asynccontextmanager
async def gateway_process(
    config: Path, *, ready_events: Sequence[bytes], token: str, prefix: Sequence[str] = ()
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m gateway run`` with a JSON-logging config, yielded once its log showed
    every event in ``ready_events`` (e.g. ``b'"event": "ready"'``); terminated after."""
    proc = await asyncio.create_subprocess_exec(
        *prefix,
        sys.executable,
        "-m",
        "gateway",
        "run",
        "--config",
        str(config),
        cwd=REPO,
        env={**os.environ, "COBOT_ACCESS_TOKEN": token},
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert proc.stderr is not None
    waiting = set(ready_events)
    drain: asyncio.Task[bytes] | None = None
    try:
        while waiting:
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
            waiting = {event for event in waiting if event not in line}
        drain = asyncio.create_task(proc.stderr.read())  # keep the pipe from filling
        yield proc
    finally:
        proc.terminate()
        await proc.wait()
        if drain is not None:
            await drain
