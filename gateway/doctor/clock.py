"""Is the clock synchronised? Check-ins carry the tap's time and TLS needs a sane
clock; a Pi has no battery-backed clock and boots in the past until NTP answers."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable

from gateway.clock import kernel_synchronized

TIMEDATECTL_DEADLINE = 5.0


async def timedatectl() -> bool | None:
    """systemd-timesyncd's (or chrony's) verdict through timedated; None if unavailable."""
    exe = shutil.which("timedatectl")
    if exe is None:
        return None
    try:
        proc = await asyncio.create_subprocess_exec(
            exe,
            "show",
            "-p",
            "NTPSynchronized",
            "--value",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return None
    try:
        async with asyncio.timeout(TIMEDATECTL_DEADLINE):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None
    answer = out.decode().strip()
    if proc.returncode != 0 or answer not in ("yes", "no"):
        return None
    return answer == "yes"


Probe = tuple[str, Callable[[], Awaitable[bool | None]]]


async def _kernel() -> bool | None:
    return kernel_synchronized()


DEFAULT_PROBES: tuple[Probe, ...] = (("timedatectl", timedatectl), ("adjtimex", _kernel))


async def clock_synchronised(
    probes: tuple[Probe, ...] = DEFAULT_PROBES,
) -> tuple[bool | None, str]:
    """(verdict, who said so); the verdict is None when nothing could tell."""
    for name, probe in probes:
        verdict = await probe()
        if verdict is not None:
            return verdict, name
    return None, "neither timedatectl nor adjtimex could tell"
