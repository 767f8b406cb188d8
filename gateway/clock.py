"""The gateway's clocks, and whether the wall clock can be trusted yet.

A Raspberry Pi has no real-time clock: until NTP syncs it runs on an old time (restored
by fake-hwclock). A tap read then carries ``ClockQuality.UNSYNCED`` with its monotonic
reading and the boot it happened in, so its time can be corrected once the clock is
synchronised (``corrected_time``), and is never used to back-date a check-in before.

Synchronised means: systemd-timesyncd's flag file exists
(``/run/systemd/timesync/synchronized``, timesyncd.service(8)), or the kernel's NTP status
(adjtimex(2), read only) has ``STA_UNSYNC`` clear, or the ``Date`` header of an API
answer (RFC 9110 section 6.6.1, one-second resolution) agrees with our clock within
``AGREEMENT``: a gateway without NTP but with a right clock is not held back, and one
whose clock is hours off is not trusted until it is fixed.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
STA_UNSYNC = 0x0040  # <linux/timex.h>
TIME_ERROR = 5  # adjtimex's return value while the clock is not synchronised
AGREEMENT = timedelta(seconds=120)  # API Date vs our clock: close enough to bill by day
SAME = timedelta(seconds=2)  # a correction smaller than this changes nothing


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time, aware, UTC."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (CLOCK_MONOTONIC, this boot)."""

    def boot_id(self) -> str:
        """This boot's id: monotonic readings compare only within one boot."""

    def synchronized(self) -> bool:
        """Whether the wall clock is synchronised (NTP)."""

    def reference_now(self) -> datetime | None:
        """The true time if it is known: ``now()`` once synchronised, else ``now()``
        corrected by the last API ``Date`` seen (a clock hours off, no NTP), else None."""


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


def kernel_synchronized() -> bool | None:
    """The kernel's view (adjtimex with modes = 0 only reads); None if unavailable."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR and not tx.status & STA_UNSYNC


def _read_boot_id() -> str:
    try:
        return BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return "unknown"


class SystemClock:
    """The real clocks. ``synchronized`` answers from memory (it is asked on every tap);
    ``refresh`` reads the system's flags (blocking: call it in a thread, as the gateway's
    clock part does). Once synchronised, a clock stays good enough to bill by the day."""

    def __init__(self, flag: Path = TIMESYNCD_FLAG, boot_id: str | None = None) -> None:
        self._flag = flag
        self._synced = False
        self._offset: timedelta | None = None
        self._boot = boot_id or _read_boot_id()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def boot_id(self) -> str:
        return self._boot

    def synchronized(self) -> bool:
        return self._synced

    def refresh(self) -> bool:
        """Read timesyncd's flag and the kernel's status; True once synchronised."""
        if not self._synced:
            self._synced = self._flag.exists() or bool(kernel_synchronized())
        return self._synced

    def observe(self, reference: datetime) -> None:
        """A trusted time (an API answer's ``Date``) was seen just now."""
        if self._synced:
            return
        offset = reference - self.now()
        if abs(offset) <= AGREEMENT:
            self._synced = True
        else:
            # Hours off and no NTP: taps stay marked, but their true time can be known.
            self._offset = offset

    def reference_now(self) -> datetime | None:
        if self._synced:
            return self.now()
        return None if self._offset is None else self.now() + self._offset


async def watch_clock(clock: SystemClock, poll: float) -> None:
    """Until the wall clock is synchronised, look every ``poll`` seconds (the taps read
    meanwhile are marked, and corrected once it is). Then the part stays up, idle:
    synchronised is for good (the kernel keeps the clock), and a part that ended would
    read as "stopped" in ``status`` and as down in ``checkin_gateway_part_up``."""
    while True:
        if await asyncio.to_thread(clock.refresh):
            break
        await asyncio.sleep(poll)
    log.info("clock_synchronized")
    await asyncio.Event().wait()


SYSTEM_CLOCK = SystemClock()
"""The process's clock, shared by the readers (taps), the API client (``Date``
headers) and the delivery (corrections)."""


def corrected_time(
    tapped_at: datetime,
    tapped_mono: float | None,
    tapped_boot: str | None,
    *,
    now: datetime,
    monotonic: float,
    boot_id: str,
) -> datetime | None:
    """A tap's true time from a synchronised reading in the same boot:
    ``now - (monotonic - tapped_mono)``; None when it cannot be known (another boot, or
    no monotonic reading). Within ``SAME`` of ``tapped_at`` the clock was right after
    all and ``tapped_at`` is returned unchanged."""
    if tapped_mono is None or tapped_boot is None or tapped_boot != boot_id:
        return None
    fixed = now - timedelta(seconds=monotonic - tapped_mono)
    return tapped_at if abs(fixed - tapped_at) < SAME else fixed
