"""The space's business clock: frozen or running, movable by tests.

A check-in is valid until the end of its business day (23:59:59 in the space's time
zone); which day a moment belongs to depends on the zone, so the clock carries it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from gateway.sim.timefmt import business_day


class BusinessClock:
    def __init__(
        self, timezone: str | tzinfo = "UTC", wall: Callable[[], datetime] | None = None
    ) -> None:
        self.zone: tzinfo = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        self._wall = wall or (lambda: datetime.now(UTC))
        self._frozen: datetime | None = None
        self._offset = timedelta()

    def now(self) -> datetime:
        base = self._frozen if self._frozen is not None else self._wall()
        return (base + self._offset).astimezone(UTC)

    def advance(self, seconds: float) -> None:
        self._offset += timedelta(seconds=seconds)

    def set_time(self, moment: datetime, *, running: bool = False) -> None:
        """Move the clock to ``moment``: frozen there (default) or running on from it."""
        if moment.tzinfo is None:
            raise ValueError("set_time needs an aware datetime")
        self._offset = timedelta()
        if running:
            self._frozen = None
            self._offset = moment - self._wall()
        else:
            self._frozen = moment

    def today(self) -> date:
        return business_day(self.now(), self.zone)
