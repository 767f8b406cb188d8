"""The application runner: the daemon's parts declared in one place, each supervised.

In the manner of aiohttp's ``web_runner.py``: parts start in the order given and stop
in reverse under one deadline (``STOP_DEADLINE``). Every part runs under a supervisor:
an unexpected exception is logged once with its traceback, the part restarts after a
capped, growing delay (reset once it has run ``STABLE_AFTER`` seconds), and the other
parts, the doors first of all, keep running. A part that ends by itself is done; a part
that raises ``GatewayError`` knows it cannot work (no permission, no device) and stops
with that message, without a restart loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from gateway.errors import GatewayError
from gateway.readers.backoff import Backoff

log = structlog.get_logger(__name__)

STOP_DEADLINE = 5.0  # seconds for the whole stop, all parts together
RESTART_INITIAL = 1.0
RESTART_MAX = 60.0
STABLE_AFTER = 30.0  # a part that ran this long before failing starts its backoff over


@dataclass(frozen=True, slots=True)
class Part:
    """One long-lived piece of the daemon: ``run`` is called again after a crash."""

    name: str
    run: Callable[[], Awaitable[object]]
    restart: bool = True  # False: a crash is logged and the part stays down


@dataclass(slots=True)
class PartState:
    """What ``status`` shows of a part."""

    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    stopped_because: str | None = None
    errors_seen: set[str] = field(default_factory=set)


class Runner:
    def __init__(
        self,
        parts: Sequence[Part],
        *,
        stop_deadline: float = STOP_DEADLINE,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        names = [p.name for p in parts]
        if len(set(names)) != len(names):
            raise ValueError(f"part names must be unique: {names}")
        self._parts = list(parts)
        self._stop_deadline = stop_deadline
        self._sleep = sleep
        self._clock = clock
        self.states: dict[str, PartState] = {p.name: PartState() for p in parts}

    async def run(self, on_started: Callable[[], None] | None = None) -> None:
        """Start every part, in order; on cancellation stop them in reverse order."""
        tasks: list[asyncio.Task[None]] = []
        try:
            for part in self._parts:
                tasks.append(asyncio.create_task(self._supervise(part), name=part.name))
            if on_started is not None:
                on_started()
            # wait, not gather: cancelling the runner must not cancel every part at
            # once, but stop them in reverse order below.
            await asyncio.wait(tasks)
        finally:
            await self._stop(tasks)

    async def _stop(self, tasks: list[asyncio.Task[None]]) -> None:
        deadline = self._clock() + self._stop_deadline
        for task in reversed(tasks):
            task.cancel()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(max(0.0, deadline - self._clock())):
                    await asyncio.shield(task)
            if not task.done():
                # Abandoned rather than awaited forever: the process is stopping.
                log.error("part_did_not_stop", part=task.get_name(), deadline_s=self._stop_deadline)

    async def _supervise(self, part: Part) -> None:
        state = self.states[part.name]
        backoff = Backoff(initial=RESTART_INITIAL, maximum=RESTART_MAX)
        while True:
            started = self._clock()
            state.running = True
            try:
                await part.run()
            except GatewayError as exc:
                state.running, state.stopped_because = False, str(exc)
                log.error("part_stopped", part=part.name, error=str(exc))
                return
            except Exception as exc:
                state.running, state.last_error = False, repr(exc)
                kind = type(exc).__name__
                if kind in state.errors_seen:
                    log.warning("part_crashed_again", part=part.name, error=repr(exc))
                else:
                    state.errors_seen.add(kind)
                    log.exception("part_crashed", part=part.name)
                if not part.restart:
                    state.stopped_because = repr(exc)
                    return
                if self._clock() - started >= STABLE_AFTER:
                    backoff.reset()
                delay = backoff.next_delay()
                state.restarts += 1
                log.info("part_restarting", part=part.name, in_s=delay)
                await self._sleep(delay)
                continue
            state.running = False
            return
