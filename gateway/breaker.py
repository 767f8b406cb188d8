"""Circuit breaker for the Cobot API: once it fails, taps stop waiting for it.

CLOSED: taps preview online. A failure (no answer within the deadline, connection
refused, 5xx) opens the breaker: taps are decided locally at once, and a probe is due
after a capped, growing delay. A success anywhere (probe, replay, sync) closes it.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable

import structlog

from gateway.readers.backoff import Backoff

log = structlog.get_logger(__name__)

PROBE_INITIAL = 2.0
PROBE_MAX = 60.0


class BreakerState(enum.StrEnum):
    CLOSED = "closed"  # API answering: online decisions
    OPEN = "open"  # API failing: local decisions until the next probe succeeds


class Breaker:
    def __init__(
        self,
        *,
        initial: float = PROBE_INITIAL,
        maximum: float = PROBE_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backoff = Backoff(initial=initial, maximum=maximum)
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._probe_at = 0.0
        self._last_error: str | None = None
        self._closed = asyncio.Event()
        self._closed.set()

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def is_open(self) -> bool:
        return self._state is BreakerState.OPEN

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def probe_due_in(self) -> float:
        return max(0.0, self._probe_at - self._clock())

    def probe_soon(self) -> None:
        """Something suggests the API may be back (e.g. the network came up)."""
        self._probe_at = self._clock()

    def record_failure(self, error: str) -> None:
        self._last_error = error
        delay = self._backoff.next_delay()
        self._probe_at = self._clock() + delay
        if self._state is BreakerState.CLOSED:
            self._state = BreakerState.OPEN
            self._closed.clear()
            log.warning("api_unreachable", error=error, deciding="locally", next_probe_s=delay)
        else:
            log.debug("api_still_unreachable", error=error, next_probe_s=delay)

    def record_success(self) -> None:
        self._backoff.reset()
        if self._state is BreakerState.OPEN:
            self._state = BreakerState.CLOSED
            self._closed.set()
            log.info("api_reachable_again")

    async def wait_closed(self) -> None:
        await self._closed.wait()
