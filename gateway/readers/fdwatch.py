"""Serving a device's file descriptor on the event loop until it fails.

Readers that read a kernel fd themselves (a GPIO line request, an evdev node) share
this: ``add_reader`` on the fd, one re-armable timer on the kernel's clock (the end of
a Wiegand frame, the pause that drops a half-typed token), and an end: the read
callback calls ``lost`` with the fault, ``serve`` raises it and cleans up, also when
cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import NoReturn

from gateway.readers.link import LinkFault


class FdWatch:
    def __init__(self, fd: int, *, clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self._fd = fd
        self._clock_ns = clock_ns
        self._loop = asyncio.get_running_loop()
        self._lost: asyncio.Future[LinkFault] = self._loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._reading = False

    def lost(self, fault: LinkFault) -> None:
        """The device failed: stop reading; ``serve`` raises ``fault``."""
        self._stop_reading()
        if not self._lost.done():
            self._lost.set_result(fault)

    def wake_at(self, deadline_ns: int | None, callback: Callable[[], None]) -> None:
        """Call ``callback`` at ``deadline_ns`` (the kernel's CLOCK_MONOTONIC), replacing
        the timer set before; None only cancels it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadline_ns is not None and not self._lost.done():
            delay = max(deadline_ns - self._clock_ns(), 0) / 1e9
            self._timer = self._loop.call_later(delay, self._fire, callback)

    def _fire(self, callback: Callable[[], None]) -> None:
        self._timer = None
        callback()

    async def serve(self, on_readable: Callable[[], None], up: Callable[[], None]) -> NoReturn:
        """Read until ``lost``; ``up()`` once reading. Raises the fault; on the way out
        (a fault or cancellation) stops reading and cancels the timer."""
        try:
            self._loop.add_reader(self._fd, on_readable)
            self._reading = True
            up()
            raise await self._lost
        finally:
            self._stop_reading()
            self.wake_at(None, lambda: None)

    def _stop_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)
