"""Client-side sliding-window rate limiting with priorities.

Cobot allows 120 requests per minute to ``/api/check_ins`` (previews count) and 60 per
minute to other endpoints, per user, and answers 429 beyond that. We never want a 429:
one limiter, shared by every caller, keeps a log of send times per endpoint group and
lets a request go only while fewer than ``limit`` were sent in the last window.

We are deliberately stricter than the server in two ways: every endpoint other than
``/api/check_ins`` shares one window (the docs say "per endpoint", this bounds us no
matter how Cobot groups them), and the window is a little longer than 60 s so that
network jitter between our clock and the server's cannot make it count one too many.

Priorities: a live tap goes before queued replays, which go before token syncs.
Lower priorities also leave ``headroom`` slots unused, and they are *paced*: evenly
spaced at ``window / (limit - headroom)`` instead of bursting. A burst would fill the
window at once and free nothing until it slides a whole minute later; paced, a slot
frees every half second (at 120/min), so a live tap that finds the headroom used waits
at most that long, while a backlog still drains at the limit (less the headroom: 1.7 %
at 120/min).
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class Priority(enum.IntEnum):
    LIVE = 0  # a person is standing at the door
    REPLAY = 1  # queued offline check-ins
    SYNC = 2  # token list refresh, probes


class Group(enum.StrEnum):
    CHECK_INS = "check_ins"
    DEFAULT = "default"
    # MOCO's API (gateway/moco/client.py): another server, its own window ([moco] rpm).
    MOCO = "moco"
    # Booking writes (POST/PUT/DELETE of bookings, 10 per minute): taken on top of a
    # DEFAULT slot by gateway/cobot/bookings.py, never chosen by ``group_for``.
    BOOKING_WRITES = "booking_writes"


def group_for(path: str) -> Group:
    return Group.CHECK_INS if path.rstrip("/") == "/api/check_ins" else Group.DEFAULT


WINDOW = 60.0
# Our window is longer than the server's by this much (see module docstring).
WINDOW_MARGIN = 0.25
# A live tap costs two /api/check_ins requests (preview + check-in): keep that free.
HEADROOM = {Priority.LIVE: 0, Priority.REPLAY: 2, Priority.SYNC: 4}
# The longest ``block``; the same bound as headers.MAX_RETRY_AFTER.
MAX_BLOCK = 300.0


@dataclass(frozen=True, slots=True)
class GroupState:
    group: Group
    limit: int
    used: int  # requests in the current window
    blocked_for: float  # seconds left of a server-imposed Retry-After
    waiting: int


class _Window:
    __slots__ = ("blocked_until", "last_paced", "limit", "sent", "waiting")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: deque[float] = deque()
        self.blocked_until = 0.0
        self.last_paced = float("-inf")  # the last send of a paced (non-live) request
        self.waiting: dict[Priority, int] = dict.fromkeys(Priority, 0)


class RateLimiter:
    def __init__(
        self,
        limits: dict[Group, int],
        *,
        window: float = WINDOW + WINDOW_MARGIN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._windows = {g: _Window(n) for g, n in limits.items()}
        self._window = window
        self._clock = clock
        self._changed = asyncio.Event()
        # Told of every ``block`` a 429 caused here (fleet sharing over MQTT).
        self.on_block: list[Callable[[Group, float], None]] = []

    def _headroom(self, w: _Window, priority: Priority) -> int:
        # Never reserve so much that a small limit leaves lower priorities nothing.
        return min(HEADROOM[priority], max(0, w.limit // 4))

    def _wait_time(self, w: _Window, priority: Priority) -> float | None:
        """Seconds until ``priority`` may send; 0 means now; None means "when woken"."""
        now = self._clock()
        while w.sent and w.sent[0] <= now - self._window:
            w.sent.popleft()
        if w.blocked_until > now:
            return w.blocked_until - now
        if any(w.waiting[p] for p in Priority if p < priority):
            return None  # someone more urgent goes first; they wake us when done
        allowed = w.limit - self._headroom(w, priority)
        if priority is not Priority.LIVE:
            pace = w.last_paced + self._window / max(1, allowed) - now
            if pace > 0:
                return pace
        if len(w.sent) < allowed:
            return 0.0
        # The (len - allowed + 1)-th oldest send must leave the window first.
        return w.sent[len(w.sent) - allowed] + self._window - now

    async def acquire(self, group: Group, priority: Priority) -> None:
        """Wait for a slot and take it. Cancellation (e.g. a caller's deadline) is safe."""
        w = self._windows[group]
        w.waiting[priority] += 1
        try:
            while True:
                delay = self._wait_time(w, priority)
                if delay == 0.0:
                    now = self._clock()
                    w.sent.append(now)
                    if priority is not Priority.LIVE:
                        w.last_paced = now
                    return
                self._changed.clear()
                try:
                    async with asyncio.timeout(delay):
                        await self._changed.wait()
                except TimeoutError:
                    pass
        finally:
            w.waiting[priority] -= 1
            self._changed.set()

    def known_wait(self, group: Group, priority: Priority) -> float:
        """Seconds at least until ``priority`` may send in ``group`` (0: now, or unknown
        because more urgent requests go first). A caller with a deadline shorter than
        this can give up at once instead of waiting for a certain failure."""
        return self._wait_time(self._windows[group], priority) or 0.0

    def block(self, group: Group, seconds: float, *, share: bool = True) -> None:
        """Obey a 429's Retry-After: nothing in this group goes for ``seconds``.
        ``share``: tell ``on_block`` (False for a block a fleet peer told us of)."""
        w = self._windows[group]
        # The client caps Retry-After already; this keeps any caller from blocking a
        # group for ever (inf) or not at all by accident (nan compares false).
        if not 0.0 <= seconds <= MAX_BLOCK:
            seconds = MAX_BLOCK if seconds > MAX_BLOCK or math.isnan(seconds) else 0.0
        w.blocked_until = max(w.blocked_until, self._clock() + seconds)
        self._changed.set()
        if share:
            for listener in self.on_block:
                listener(group, seconds)

    def state(self) -> list[GroupState]:
        now = self._clock()
        out = []
        for group, w in self._windows.items():
            used = sum(1 for t in w.sent if t > now - self._window)
            out.append(
                GroupState(
                    group=group,
                    limit=w.limit,
                    used=used,
                    blocked_for=max(0.0, w.blocked_until - now),
                    waiting=sum(w.waiting.values()),
                )
            )
        return out
