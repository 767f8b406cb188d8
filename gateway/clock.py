"""The gateway's clocks, and how far a tap's wall-clock time can be trusted.

A Raspberry Pi has no battery-backed clock: until NTP answers it runs on whatever
fake-hwclock saved at the last shutdown, possibly days behind. A tap read then carries a
wrong wall time, but its monotonic time is right. Once the clock is synchronised, a tap
of the *same boot* is corrected from the monotonic clock (``corrected_tap_time``); a tap
of an earlier boot cannot be (the monotonic clock restarts at boot), and must never be
back-dated from the unsynchronised wall time.

``Clock`` is the seam (tests inject one); ``SystemClock`` is the real one. Sources:
adjtimex(2) (``STA_UNSYNC``, cleared by an NTP daemon disciplining the kernel clock;
``TIME_ERROR`` from the call), systemd-timesyncd's flag file
``/run/systemd/timesync/synchronized`` (sd-timesyncd(8): created once synchronised),
and ``/proc/sys/kernel/random/boot_id`` (random(4): a new UUID every boot).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
STA_UNSYNC = 0x0040  # linux/timex.h: the clock is not synchronised
TIME_ERROR = 5  # adjtimex's return value when the clock is not synchronised


class Clock(Protocol):
    """Everything the gateway asks about time; inject a fake one in tests."""

    def now(self) -> datetime:
        """Wall-clock time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (``time.monotonic``); restarts at boot."""

    def boot_id(self) -> str:
        """This boot's id (a UUID string): monotonic readings compare only within it."""

    def synchronized(self) -> bool:
        """Whether the wall clock is NTP-synchronised now (False when nobody can tell)."""


class _Timex(ctypes.Structure):
    # The head of struct timex (adjtimex(2)); the padding covers the rest of the kernel's
    # struct (about 200 bytes on 64-bit). C types keep the layout right on 32- and 64-bit.
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
    """The kernel's word through adjtimex(2) with ``modes = 0`` (read only, needs no
    privilege): True when ``STA_UNSYNC`` is clear; None when the call is unavailable."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return not (tx.status & STA_UNSYNC or state == TIME_ERROR)


def timesyncd_synchronized(flag: Path = TIMESYNCD_FLAG) -> bool:
    """systemd-timesyncd touches this file once it has synchronised (since systemd 239)."""
    return flag.exists()


def read_boot_id(path: Path = BOOT_ID) -> str:
    """This boot's UUID; an empty string if the kernel does not say (then no tap is
    ever corrected across what might be a reboot)."""
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        return ""


class SystemClock:
    """The machine's clocks. The boot id is read once (it cannot change while we run)."""

    def __init__(self, *, timesyncd_flag: Path = TIMESYNCD_FLAG, boot_id: Path = BOOT_ID) -> None:
        self._flag = timesyncd_flag
        self._boot_id = read_boot_id(boot_id)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def boot_id(self) -> str:
        return self._boot_id

    def synchronized(self) -> bool:
        # Either source saying yes is enough: chrony and ntpd clear STA_UNSYNC but do not
        # write timesyncd's flag; timesyncd does both.
        return bool(kernel_synchronized()) or timesyncd_synchronized(self._flag)


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading of the clocks, taken together (a tap's, or a later synchronised one)."""

    wall: datetime  # aware UTC
    mono: float  # seconds, time.monotonic()
    boot_id: str
    synced: bool

    @classmethod
    def take(cls, clock: Clock) -> Reading:
        return cls(clock.now(), clock.monotonic(), clock.boot_id(), clock.synchronized())


def corrected_tap_time(tap: Reading, synced: Reading) -> datetime | None:
    """The tap's true wall time, from a later synchronised reading of the same boot.

    ``synced.wall - (synced.mono - tap.mono)``: the monotonic clock does not jump when NTP
    steps the wall clock, so the elapsed monotonic time is right even when ``tap.wall``
    was days off. A tap already read on a synchronised clock keeps its own time.

    Returns None when the tap cannot be corrected: ``synced`` is not synchronised, it is
    of another boot (or a boot id is unknown), or it is older than the tap.
    """
    if tap.synced:
        return tap.wall
    if not synced.synced or not tap.boot_id or tap.boot_id != synced.boot_id:
        return None
    elapsed = synced.mono - tap.mono
    if elapsed < 0:
        return None
    return synced.wall - timedelta(seconds=elapsed)
