"""The clock seam and the correction of taps read on an unsynchronised clock (issue 10,
case 2): a tap's time is only as good as the clock when it was read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.clock import (
    Clock,
    Reading,
    SystemClock,
    corrected_tap_time,
    kernel_synchronized,
    read_boot_id,
    timesyncd_synchronized,
)

BOOT = "6f1c2a3e-0000-4000-8000-000000000001"
OTHER_BOOT = "6f1c2a3e-0000-4000-8000-000000000002"
# fake-hwclock's saved time: the Pi shut down on Friday evening, boots on Monday.
STALE = datetime(2026, 11, 27, 18, 5, tzinfo=UTC)
REAL = datetime(2026, 11, 30, 7, 2, tzinfo=UTC)


@dataclass
class FakeClock:
    wall: datetime
    mono: float = 100.0
    boot: str = BOOT
    synced: bool = False

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def boot_id(self) -> str:
        return self.boot

    def synchronized(self) -> bool:
        return self.synced

    def step(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


def test_a_tap_before_ntp_is_corrected_from_the_monotonic_clock() -> None:
    fake = FakeClock(STALE)
    clock: Clock = fake  # the fake satisfies the protocol (mypy checks)
    tap = Reading.take(clock)
    assert tap == Reading(STALE, 100.0, BOOT, synced=False)
    fake.step(40.0)  # 40 s later NTP answers and steps the wall clock by ~2.5 days
    fake.wall = REAL + timedelta(seconds=40)
    fake.synced = True
    # The member arrived at 07:02 on Monday, not on Friday evening.
    assert corrected_tap_time(tap, Reading.take(clock)) == REAL


def test_correction_uses_elapsed_monotonic_time_exactly() -> None:
    tap = Reading(STALE, 1_000.25, BOOT, synced=False)
    later = Reading(REAL, 4_600.75, BOOT, synced=True)
    assert corrected_tap_time(tap, later) == REAL - timedelta(seconds=3_600.5)


def test_a_tap_of_another_boot_cannot_be_corrected() -> None:
    tap = Reading(STALE, 50.0, BOOT, synced=False)
    assert corrected_tap_time(tap, Reading(REAL, 20.0, OTHER_BOOT, synced=True)) is None
    # Even when the monotonic numbers happen to look plausible.
    assert corrected_tap_time(tap, Reading(REAL, 80.0, OTHER_BOOT, synced=True)) is None


def test_never_corrected_from_an_unsynchronised_reading() -> None:
    tap = Reading(STALE, 50.0, BOOT, synced=False)
    assert corrected_tap_time(tap, Reading(STALE, 90.0, BOOT, synced=False)) is None


def test_unknown_boot_id_or_a_reading_from_before_the_tap() -> None:
    assert corrected_tap_time(Reading(STALE, 50, "", False), Reading(REAL, 90, "", True)) is None
    tap = Reading(STALE, 50.0, BOOT, synced=False)
    assert corrected_tap_time(tap, Reading(REAL, 49.0, BOOT, synced=True)) is None


def test_a_tap_read_on_a_synchronised_clock_keeps_its_time() -> None:
    tap = Reading(REAL, 50.0, BOOT, synced=True)
    assert corrected_tap_time(tap, Reading(REAL + timedelta(hours=1), 10.0, OTHER_BOOT, True)) == (
        REAL
    )


def test_timesyncd_flag_and_boot_id_files(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    assert timesyncd_synchronized(flag) is False
    flag.touch()
    assert timesyncd_synchronized(flag) is True
    boot = tmp_path / "boot_id"
    boot.write_text(BOOT + "\n")
    assert read_boot_id(boot) == BOOT
    assert read_boot_id(tmp_path / "absent") == ""
    # The flag alone makes the system clock synchronised (timesyncd without STA_UNSYNC).
    clock = SystemClock(timesyncd_flag=flag, boot_id=boot)
    assert clock.synchronized() is True
    assert clock.boot_id() == BOOT


def test_the_real_clocks_of_this_machine() -> None:
    # adjtimex with modes = 0 reads without privilege; whatever this machine's NTP state,
    # the answer is a verdict (Linux always offers the call).
    assert kernel_synchronized() in (True, False)
    clock = SystemClock()
    assert clock.synchronized() in (True, False)
    boot = clock.boot_id()
    assert len(boot) == 36 and boot.count("-") == 4
    assert boot == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    now = clock.now()
    assert now.tzinfo is UTC
    assert abs((now - datetime.now(UTC)).total_seconds()) < 5
    first = clock.monotonic()
    assert clock.monotonic() >= first
