"""Is the clock synchronised? Check-ins carry the tap's time and TLS needs a sane
clock; a Pi has no battery-backed clock and boots in the past until NTP answers."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import shutil
from collections.abc import Awaitable, Callable

TIMEDATECTL_DEADLINE = 5.0
STA_UNSYNC = 0x0040
TIME_ERROR = 5


class _Timex(ctypes.Structure):
    # The head of struct timex (adjtimex(2)); the rest is padding we never read. The
    # layout follows the C types, so it is right on 32- and 64-bit Pis alike.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 256),
    ]


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


def adjtimex() -> bool | None:
    """The kernel's own flag: STA_UNSYNC is cleared by an NTP daemon disciplining the
    clock. None when the call is not available."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        tx = _Timex()  # modes = 0: read only, no privilege needed
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return not (tx.status & STA_UNSYNC or state == TIME_ERROR)


Probe = tuple[str, Callable[[], Awaitable[bool | None]]]


async def _kernel() -> bool | None:
    return adjtimex()


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
