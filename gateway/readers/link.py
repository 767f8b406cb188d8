"""One supervisor for every device link: open it, keep it, reopen it when it goes.

A *link* is whatever a reader holds open: a serial port, an NFC reader, a packet
socket. Each reader hands ``LinkSupervisor.run`` one *attempt*: a coroutine that opens
the device, calls ``up()`` once it is open, and then serves it until it is lost. The
attempt raises ``LinkFault`` (what went wrong, of which kind) when the device cannot be
opened or goes away; the supervisor decides what follows, the same way for every link:

- **Backoff.** Capped exponential delays between attempts (``LinkPolicy``). They start
  over only once a link has stayed up for ``stable_after`` seconds, so a loose cable is
  not reopened at full rate forever.
- **Giving up.** A fault marked ``fatal`` (a missing library, an unusable port name)
  ends supervision at once; ``permission`` faults end it after ``permission_attempts``
  in a row (right after plug-in udev may fix a fresh node's mode a moment later; more
  denials mean the permission is really missing). Then ``run`` raises the fault (a
  ``ReaderError``) with state ``FAILED``; the rest of the gateway keeps running.
- **One warning rule.** A kind of fault not yet seen in the current outage is logged
  at warning level; its repeats at debug. The outage ends when the link has been up for
  ``stable_after`` seconds; a link that comes back after a warning logs that once, at
  info. A loose cable flapping all day gives one warning per kind of fault, not one per
  flap.
- **Counters** for ``status``: opens, failures, the last error, the state (``stats``).

Time comes from an injected ``clock`` and ``sleep`` so tests fire the timers instead of
waiting (aioesphomeapi's ``ReconnectLogic`` and its tests have the same shape).

``LinkPolicy.backoff()`` gives a plain ``Backoff`` with the same settings for a task
that is not a device link (e.g. restarting a crashed reader); ``LinkSupervisor`` also
works for such a task: wrap the work as an attempt that raises ``LinkFault``.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from gateway.errors import ReaderError
from gateway.readers.backoff import Backoff

log = structlog.get_logger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Attempt = Callable[[], Awaitable[None]]

PERMISSION = "permission"
"""The fault kind that ``LinkPolicy.permission_attempts`` counts."""
LOST = "lost"
"""A usual kind for a link that was up and went away without a more precise reason."""


class LinkState(enum.StrEnum):
    """Where a link is; a reader's ``state`` is its link's."""

    CONNECTING = "connecting"  # the first attempt is under way
    READY = "ready"
    RECONNECTING = "reconnecting"  # down; retrying with capped backoff
    FAILED = "failed"  # will not retry (e.g. missing permission); the rest keeps running
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class LinkPolicy:
    """How a link is retried; seconds.

    ``first_delay`` doubles up to ``cap``; ``jitter`` (0..1) shortens each delay by up to
    that fraction (for links many gateways share, e.g. a network service; local devices
    leave it at 0); ``permission_attempts`` is how many ``permission`` faults in a row
    are tried before giving up (1: give up at the first).
    """

    first_delay: float = 0.5
    cap: float = 30.0
    stable_after: float = 10.0
    permission_attempts: int = 3
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.first_delay <= self.cap:
            raise ValueError(f"need 0 < first_delay <= cap, got {self.first_delay}, {self.cap}")
        if self.stable_after < 0:
            raise ValueError(f"stable_after must be >= 0, got {self.stable_after}")
        if self.permission_attempts < 1:
            raise ValueError(f"permission_attempts must be >= 1, got {self.permission_attempts}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within 0..1, got {self.jitter}")

    def backoff(self, rng: Callable[[], float] = random.random) -> Backoff:
        """A fresh ``Backoff`` with these delays."""
        return Backoff(self.first_delay, self.cap, jitter=self.jitter, rng=rng)


class LinkFault(ReaderError):
    """A link could not be opened or went away.

    ``kind`` is a short stable name (``"no-device"``, ``"permission"``, ``"lost"``...):
    the warning rule and the permission count go by it. ``str(fault)`` says what is
    wrong and how to fix it; the library's exception stays as ``__cause__``.
    """

    def __init__(self, kind: str, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.fatal = fatal


@dataclass(frozen=True, slots=True)
class LinkStats:
    """Counters since the supervisor was made, across reconnects."""

    state: LinkState
    opens: int  # times the link came up
    failures: int  # failed attempts and losses
    last_error: str | None

    @property
    def reconnects(self) -> int:
        """Opens after the first: the link came back this often."""
        return max(self.opens - 1, 0)


class LinkSupervisor:
    """Runs a link's attempts under a ``LinkPolicy``; see the module docstring.

    ``events`` prefixes the log events (``serial_reader`` gives ``serial_reader_ready``,
    ``_unavailable``, ``_lost``, ``_back``, ``_failed``); ``fields`` are bound into each.
    ``up()`` and ``down()`` are the synchronous core; ``run`` drives them.
    """

    def __init__(
        self,
        policy: LinkPolicy,
        *,
        events: str,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        **fields: object,
    ) -> None:
        self.policy = policy
        self._events = events
        self._clock = clock
        self._sleep = sleep
        self._backoff = policy.backoff(rng)
        self._log = log.bind(**fields)
        self._state = LinkState.CONNECTING
        self._opens = 0
        self._failures = 0
        self._last_error: str | None = None
        self._up_since: float | None = None
        self._denied = 0  # permission faults in a row
        self._seen: set[str] = set()  # fault kinds warned about in this outage
        self._warned = False  # a warning awaits its "back" line
        self._stop = asyncio.Event()
        self._running = False

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def stats(self) -> LinkStats:
        return LinkStats(self._state, self._opens, self._failures, self._last_error)

    # -- the core: what happens when the link comes up or goes down --------------------

    def up(self) -> None:
        """The attempt has opened the device."""
        self._opens += 1
        self._denied = 0
        self._up_since = self._clock()
        self._state = LinkState.READY
        if self._opens == 1:
            self._log.info(f"{self._events}_ready", after_failures=self._failures)
        elif self._warned:
            self._log.info(f"{self._events}_back", attempts=self._backoff.failures)
        else:
            self._log.debug(f"{self._events}_back", attempts=self._backoff.failures)
        self._warned = False

    def is_final(self, fault: LinkFault) -> bool:
        """Whether ``fault``, reported now, would end supervision."""
        denied = self._denied + 1 if fault.kind == PERMISSION else 0
        return fault.fatal or denied >= self.policy.permission_attempts

    def down(self, fault: LinkFault) -> float | None:
        """An attempt failed or the link was lost: the delay before the next attempt,
        or None when supervision ends (state ``FAILED``, logged as an error)."""
        final = self.is_final(fault)
        self._denied = self._denied + 1 if fault.kind == PERMISSION else 0
        self._failures += 1
        self._last_error = str(fault)
        was_up, self._up_since = self._up_since, None
        if was_up is not None and self._clock() - was_up >= self.policy.stable_after:
            # It was up long enough: this is a new outage, not the same one flapping.
            self._backoff.reset()
            self._seen.clear()
        if final:
            self._state = LinkState.FAILED
            self._log.error(f"{self._events}_failed", problem=fault.kind, error=str(fault))
            return None
        self._state = LinkState.RECONNECTING
        delay = self._backoff.next_delay()
        event = f"{self._events}_{'lost' if was_up is not None else 'unavailable'}"
        if fault.kind not in self._seen:
            self._seen.add(fault.kind)
            self._warned = True
            self._log.warning(event, problem=fault.kind, error=str(fault), retry_s=delay)
        else:
            self._log.debug(event, problem=fault.kind, error=str(fault), retry_s=delay)
        return delay

    # -- the driver ---------------------------------------------------------------------

    async def run(self, attempt: Attempt) -> None:
        """Run ``attempt`` until it returns (the link was closed on purpose), ``stop()``
        is called, or a fault is final (raised; so is any other ``ReaderError``, which
        says the reader cannot work at all). Cancelling ``run`` cancels the attempt or
        the wait and leaves the state ``STOPPED``; other exceptions (bugs) propagate."""
        if self._running:
            raise RuntimeError("this link is already supervised")
        self._running = True
        self._state = LinkState.CONNECTING if self._opens == 0 else LinkState.RECONNECTING
        try:
            while not self._stop.is_set():
                try:
                    await self._until_stopped(attempt())
                except LinkFault as fault:
                    delay = self.down(fault)
                    if delay is None:
                        raise
                except ReaderError as exc:
                    self._failures += 1
                    self._last_error = str(exc)
                    self._state = LinkState.FAILED
                    self._log.error(f"{self._events}_failed", problem="reader", error=str(exc))
                    raise
                else:
                    return  # the attempt ended on its own: the link was closed on purpose
                await self._until_stopped(self._sleep(delay))
        finally:
            self._running = False
            self._up_since = None
            if self._state is not LinkState.FAILED:
                self._state = LinkState.STOPPED

    def stop(self) -> None:
        """End ``run`` soon: the running attempt or wait is cancelled, and ``run``
        returns. Final (a stopped supervisor does not start again) and idempotent."""
        self._stop.set()

    async def _until_stopped(self, work: Awaitable[None]) -> None:
        """Await ``work`` unless ``stop()`` comes first: then cancel it and wait for it
        to clean up (a serial port closes, a thread ends)."""
        task = asyncio.ensure_future(work)
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait((task, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when run itself is cancelled
            for pending in (task, stopper):
                pending.cancel()
            await asyncio.gather(task, stopper, return_exceptions=True)
        if not task.cancelled():
            task.result()  # raises the attempt's fault
