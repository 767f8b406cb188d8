"""A gateway clock that tests, benchmarks and the simulated MOCO move together.

Real time plus an offset the caller adds to: wall and monotonic clocks jump alike (a tap
an hour later is an hour later for ``min_interval`` too), and a ``MocoSpace`` whose
clock follows ``now`` sees the same minutes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from gateway.clock import SystemClock


class StepClock(SystemClock):
    """Synchronised (as NTP would have it) and movable: ``advance``, ``to_minute_start``."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(boot_id="boot-step")
        self._base_wall = start or datetime.now(UTC)
        self._base_mono = time.monotonic()
        self.offset = 0.0

    def now(self) -> datetime:
        return self._base_wall + timedelta(seconds=self.monotonic() - self._base_mono)

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def synchronized(self) -> bool:
        return True

    def refresh(self) -> bool:
        return True

    def observe(self, reference: datetime) -> None:
        pass  # the test's time rules

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def to_minute_start(self, second: float = 1.0) -> None:
        """Move on to ``second`` past the next minute (a touch then has the minute)."""
        local = self.now().astimezone()
        self.advance(60 - local.second - local.microsecond / 1e6 + second)
