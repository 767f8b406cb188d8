"""Interim reopen loop for the Wiegand and HID readers.

The shared link supervisor (``gateway/readers/link.py``, branch ``readers``) was not on
main when these readers were written. This module offers the subset of its interface
the readers use, with the same names and meaning, so that switching is an import:

    from gateway.readers.link import LOST, PERMISSION, LinkFault, LinkPolicy, LinkSupervisor

and ``Relink(...)`` becomes ``LinkSupervisor(LinkPolicy(...), events=..., **fields)``.
Then delete this module. An *attempt* opens the device, calls ``up()``, serves it until
it is lost and raises ``LinkFault``; the loop waits with capped backoff and tries again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from gateway.errors import ReaderError
from gateway.readers.backoff import Backoff
from gateway.readers.base import ReaderState

log = structlog.get_logger(__name__)

PERMISSION = "permission"
LOST = "lost"
Attempt = Callable[[], Awaitable[None]]


class LinkFault(ReaderError):
    """The device could not be opened or went away; ``kind`` is a short stable name,
    ``fatal`` ends the reader (a missing library, an impossible setting)."""

    def __init__(self, kind: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.fatal = fatal


class Relink:
    def __init__(
        self,
        *,
        events: str,
        first_delay: float = 0.5,
        cap: float = 30.0,
        permission_attempts: int = 3,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        **fields: object,
    ) -> None:
        self._events = events
        self._backoff = Backoff(first_delay, cap)
        self._permission_attempts = permission_attempts
        self._sleep = sleep
        self._log = log.bind(**fields)
        self._state = ReaderState.CONNECTING
        self._denied = 0
        self._seen: set[str] = set()
        self.opens = 0
        self.last_error: str | None = None

    @property
    def state(self) -> ReaderState:
        return self._state

    def up(self) -> None:
        self.opens += 1
        self._denied = 0
        self._backoff.reset()
        self._seen.clear()
        self._state = ReaderState.READY
        self._log.info(f"{self._events}_ready", opens=self.opens)

    async def run(self, attempt: Attempt) -> None:
        """Run attempts until cancelled, or a fault is final (raised, state FAILED)."""
        try:
            while True:
                try:
                    await attempt()
                except LinkFault as fault:
                    self.last_error = str(fault)
                    self._denied = self._denied + 1 if fault.kind == PERMISSION else 0
                    if fault.fatal or self._denied >= self._permission_attempts:
                        self._state = ReaderState.FAILED
                        self._log.error(
                            f"{self._events}_failed", problem=fault.kind, error=str(fault)
                        )
                        raise
                    self._state = ReaderState.RECONNECTING
                    delay = self._backoff.next_delay()
                    emit = self._log.debug if fault.kind in self._seen else self._log.warning
                    self._seen.add(fault.kind)
                    emit(
                        f"{self._events}_unavailable",
                        problem=fault.kind,
                        error=str(fault),
                        retry_s=delay,
                    )
                else:
                    return  # the attempt ended on purpose
                await self._sleep(delay)
        finally:
            if self._state is not ReaderState.FAILED:
                self._state = ReaderState.STOPPED
