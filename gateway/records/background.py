"""What every record backend needs besides its own records: the deliveries it starts on
the tap path (not awaited there: the next tap must not wait), and a loop that keeps
storing what the database refused until it takes it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any


class Background:
    """Tasks spawned by a backend; ``close`` gives them ``grace`` seconds, then cancels."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[object]] = set()

    def spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, grace: float) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def save_loop(
    wake: asyncio.Event,
    waiting: Callable[[], bool],
    save_once: Callable[[], Awaitable[None]],
    retry: float,
) -> None:
    """Forever: when woken, ``save_once`` every ``retry`` seconds (or sooner when woken)
    while ``waiting()`` says records are still only in memory."""
    while True:
        await wake.wait()
        wake.clear()
        while waiting():
            await save_once()
            if waiting():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(retry):
                        await wake.wait()
                wake.clear()
