"""gateway/clock.py: the clock seam and the correction of taps read before NTP synced
(issue 10, case 2): a tap's time is only as good as the clock when it was read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.clock import (
    AGREEMENT,
    Clock,
    SystemClock,
    corrected_time,
    kernel_synchronized,
)

BOOT = "6f1c2a3e-0000-4000-8000-000000000001"
OTHER_BOOT = "6f1c2a3e-0000-4000-8000-000000000002"
# fake-hwclock's saved time: the Pi shut down on Friday evening, boots on Monday.
STALE = datetime(2026, 11, 27, 18, 5, tzinfo=UTC)
REAL = datetime(2026, 11, 30, 7, 2, tzinfo=UTC)


def test_a_tap_before_ntp_is_corrected_from_the_monotonic_clock() -> None:
    # Read at 100 s on the monotonic clock with the stale wall time; 40 s later NTP has
    # stepped the wall clock by ~2.5 days. The member arrived at 07:02 on Monday.
    fixed = corrected_time(
        STALE, 100.0, BOOT, now=REAL + timedelta(seconds=40), monotonic=140.0, boot_id=BOOT
    )
    assert fixed == REAL


def test_correction_uses_elapsed_monotonic_time_exactly() -> None:
    fixed = corrected_time(STALE, 1_000.25, BOOT, now=REAL, monotonic=4_600.75, boot_id=BOOT)
    assert fixed == REAL - timedelta(seconds=3_600.5)


def test_a_tap_of_another_boot_or_without_a_reading_cannot_be_corrected() -> None:
    assert corrected_time(STALE, 50.0, BOOT, now=REAL, monotonic=20.0, boot_id=OTHER_BOOT) is None
    # Even when the monotonic numbers happen to look plausible.
    assert corrected_time(STALE, 50.0, BOOT, now=REAL, monotonic=80.0, boot_id=OTHER_BOOT) is None
    assert corrected_time(STALE, None, BOOT, now=REAL, monotonic=80.0, boot_id=BOOT) is None
    assert corrected_time(STALE, 50.0, None, now=REAL, monotonic=80.0, boot_id=BOOT) is None


def test_a_clock_that_was_right_keeps_the_tap_time() -> None:
    tapped = REAL - timedelta(seconds=30)
    fixed = corrected_time(
        tapped, 70.0, BOOT, now=REAL + timedelta(seconds=0.5), monotonic=100.0, boot_id=BOOT
    )
    assert fixed == tapped


def test_synchronised_by_the_timesyncd_flag(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    clock = SystemClock(flag, boot_id=BOOT)
    seam: Clock = clock  # the real clock satisfies the protocol (mypy checks)
    assert seam.boot_id() == BOOT
    assert clock.synchronized() is False  # nothing read yet: never assumed
    flag.touch()
    assert clock.refresh() is True
    assert clock.synchronized() is True


def test_synchronised_by_an_api_date_that_agrees(tmp_path: Path) -> None:
    clock = SystemClock(tmp_path / "absent", boot_id=BOOT)
    clock.observe(clock.now() + AGREEMENT + timedelta(hours=3))  # hours off: not trusted
    assert clock.synchronized() is False
    clock.observe(clock.now() - timedelta(seconds=5))
    assert clock.synchronized() is True


def test_the_real_clocks_of_this_machine() -> None:
    # adjtimex with modes = 0 reads without privilege; whatever this machine's NTP state,
    # Linux answers with a verdict.
    assert kernel_synchronized() in (True, False)
    clock = SystemClock()
    assert clock.refresh() in (True, False)
    boot = clock.boot_id()
    assert boot == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert len(boot) == 36 and boot.count("-") == 4
    now = clock.now()
    assert now.tzinfo is UTC
    assert abs((now - datetime.now(UTC)).total_seconds()) < 5
    first = clock.monotonic()
    assert clock.monotonic() >= first
