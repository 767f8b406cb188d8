"""Delivering queued MOCO taps: per user and day, read the presences, write the plan.

One round takes the oldest open MOCO entries, groups them by user (one user's taps go
in order; a user whose entry is deferred does not hold up the others), and for each user
replays the taps of their earliest day: ``GET /users/presences`` of that day and the
one before, ``plan_day`` (gateway/moco/plan.py), then each write with its taps marked
``sending`` first and ``delivered`` after, so a crash at any instant neither loses nor
doubles a tap (plan.py says how a ``sending`` tap is recognised in MOCO).

Failures: no answer / 5xx / garbage: the breaker opens and the taps wait (``sending``
ones stay ``sending``); 429: the limiter's MOCO group is blocked for Retry-After and the
taps wait that long; 401/403: a person must fix the key, long pause; 422 on a write:
final for its taps, with MOCO's words.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta

import structlog

from gateway.breaker import Breaker
from gateway.clock import Clock, corrected_time
from gateway.cobot.errors import (
    ApiError,
    MalformedResponse,
    NoSlot,
    NotFound,
    RateLimited,
    Refused,
    Unauthorized,
    Unavailable,
)
from gateway.cobot.ratelimit import Priority
from gateway.errors import StorageError
from gateway.moco.client import MocoClient
from gateway.moco.model import Presence
from gateway.moco.plan import Create, Fail, PlannedTap, Settle, Update, plan_day
from gateway.moco.staff import StaffBook
from gateway.model import ClockQuality
from gateway.outbox import Entry, Outbox, State
from gateway.readers.backoff import Backoff

log = structlog.get_logger(__name__)

NAME = "moco"
HEAD = 1000  # open entries looked at per round
IDLE_POLL = 5.0
AUTH_PAUSE = 300.0
CLOCK_WAIT = 30.0
RETRY_INITIAL = 1.0
RETRY_MAX = 120.0

Outcomes = dict[int, str]  # entry id -> "in", "out", "done", "failed", "waiting"


class Replayer:
    def __init__(
        self,
        outbox: Outbox,
        client: MocoClient,
        staff: StaffBook,
        breaker: Breaker,
        clock: Clock,
        *,
        on_delivered: Callable[[Entry, str], None] | None = None,
    ) -> None:
        self._outbox = outbox
        self._client = client
        self._staff = staff
        self._breaker = breaker
        self._clock = clock
        self._on_delivered = on_delivered
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._wake = asyncio.Event()
        # Users whose entries a live tap wrote since the round read the queue: their
        # part of that read is stale and is read again (or a delivered tap would be
        # planned a second time).
        self._changed: set[int] = set()
        self._backoff = Backoff(initial=RETRY_INITIAL, maximum=RETRY_MAX)
        self.delivered = 0
        self.failed = 0

    def lock(self, user_id: int) -> asyncio.Lock:
        """Held while one user's entries are being written (live touch or replay)."""
        return self._locks[user_id]

    def changed(self, user_id: int) -> None:
        """A live tap wrote this user's entries (call it holding ``lock(user_id)``)."""
        self._changed.add(user_id)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            delay = await self._round()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _round(self) -> float:
        try:
            await self._outbox.load()
            self._changed.clear()
            entries = await self._outbox.head(HEAD, backend=NAME)
        except (StorageError, OSError) as exc:
            log.error("moco_outbox_unreadable", error=str(exc))
            return RETRY_MAX
        if self._breaker.is_open and self._breaker.probe_due_in() > 0:
            return self._breaker.probe_due_in()
        if not entries:
            return await self._probe() if self._breaker.is_open else IDLE_POLL
        users: dict[int, list[Entry]] = {}
        for entry in entries:
            users.setdefault(_user(entry), []).append(entry)
        sleep = IDLE_POLL
        for user_id, mine in users.items():
            due_in = mine[0].next_attempt_at - time.time()
            if due_in > 0:
                sleep = min(sleep, due_in)
                continue
            if self._locks[user_id].locked():
                sleep = min(sleep, 0.1)  # a live tap of theirs is being written
                continue
            async with self._locks[user_id]:
                if user_id in self._changed:
                    outcomes = await self.replay_user(user_id, Priority.REPLAY)
                else:
                    outcomes = await self._replay(user_id, mine, Priority.REPLAY)
            if self._breaker.is_open:
                return max(0.1, self._breaker.probe_due_in())
            sleep = 0.0 if any(v != "waiting" for v in outcomes.values()) else min(sleep, 0.1)
        return sleep

    async def _probe(self) -> float:
        """MOCO out of reach and nothing queued: one cheap read tells when it is back."""
        users = self._staff.user_ids
        if not users:
            return IDLE_POLL
        today = self._clock.now().astimezone().date()
        try:
            await self._client.presences(users[0], today, today, priority=Priority.SYNC)
        except (Unavailable, MalformedResponse) as exc:
            self._breaker.record_failure(str(exc))
            return self._breaker.probe_due_in()
        except ApiError:
            pass
        self._breaker.record_success()
        return 0.0

    async def replay_user(self, user_id: int, priority: Priority) -> Outcomes:
        """Replay the earliest day of one user's open entries now (the caller holds
        ``lock(user_id)``)."""
        try:
            head = await self._outbox.head(HEAD, backend=NAME)
        except StorageError as exc:
            log.error("moco_outbox_unreadable", error=str(exc))
            return {}
        entries = [e for e in head if _user(e) == user_id]
        if not entries:
            return {}
        return await self._replay(user_id, entries, priority)

    async def _replay(self, user_id: int, entries: list[Entry], priority: Priority) -> Outcomes:
        outcomes: Outcomes = {}
        try:
            settled = await self._settle_times(entries)
            if not settled:
                return {e.id: "waiting" for e in entries}
            day = settled[0].tapped_at.astimezone().date()
            group = []
            for entry in settled:
                if entry.tapped_at.astimezone().date() != day:
                    break
                group.append(entry)
            await self._replay_day(user_id, day, group, priority, outcomes)
        except StorageError as exc:
            log.error("moco_outbox_write_failed", user_id=user_id, error=str(exc))
        return outcomes

    async def _settle_times(self, entries: list[Entry]) -> list[Entry]:
        """Entries with a time fit to clock by, in order, up to the first that must wait.

        A tap read on an unsynchronised clock is corrected once the clock is synchronised
        in the same boot; otherwise its time cannot be known, and a time clock must not
        guess: it fails with that reason (``queue list`` shows it)."""
        out: list[Entry] = []
        for entry in entries:
            if entry.clock is ClockQuality.NOW:
                await self._fail([entry.id], "the tap's time is unknown: not recorded")
                continue
            if entry.clock is not ClockQuality.UNSYNCED:
                out.append(entry)
                continue
            if not self._clock.synchronized():
                await self._outbox.defer(
                    entry.id,
                    "waiting for the clock to be synchronised",
                    CLOCK_WAIT,
                    outcome_unknown=entry.state is State.SENDING,
                )
                return out
            fixed = corrected_time(
                entry.tapped_at,
                entry.tapped_mono,
                entry.boot_id,
                now=self._clock.now(),
                monotonic=self._clock.monotonic(),
                boot_id=self._clock.boot_id(),
            )
            if fixed is None:
                await self._fail(
                    [entry.id],
                    "read before the clock was set, in an earlier boot: its time is unknown",
                )
                continue
            await self._outbox.correct_time(entry.id, fixed, ClockQuality.CORRECTED)
            out.append(replace(entry, tapped_at=fixed, clock=ClockQuality.CORRECTED))
        return out

    async def _replay_day(
        self, user_id: int, day: date, group: list[Entry], priority: Priority, outcomes: Outcomes
    ) -> None:
        ids = [e.id for e in group]
        sending = {e.id for e in group if e.state is State.SENDING}
        try:
            presences = await self._client.presences(
                user_id, day - timedelta(days=1), day, priority=priority
            )
        except ApiError as exc:
            await self._defer(ids, sending, exc)
            outcomes.update(dict.fromkeys(ids, "waiting"))
            return
        self._breaker.record_success()
        taps = [PlannedTap(e.id, e.tapped_at, e.id in sending) for e in group]
        plan = plan_day(day, taps, presences)
        for note in plan.notes:
            log.warning("moco_replay_note", user_id=user_id, note=note)
        by_id = {e.id: e for e in group}
        for op in plan.ops:
            if isinstance(op, Settle):
                await self._delivered(op.entries, by_id, None, op.note)
                outcomes.update({i: _io(plan.clocked_in.get(i)) for i in op.entries})
                continue
            if isinstance(op, Fail):
                await self._fail(op.entries, op.reason, user_id=user_id)
                outcomes.update(dict.fromkeys(op.entries, "failed"))
                continue
            marks = [*op.entries, *(op.also_sending if isinstance(op, Create) else [])]
            for entry_id in marks:
                if entry_id not in sending:
                    await self._outbox.mark_sending(entry_id)
                    sending.add(entry_id)
            try:
                written = await self._write(user_id, op, priority)
            except Refused as exc:
                await self._fail(op.entries, f"MOCO refused: {exc.reason}", user_id=user_id)
                outcomes.update(dict.fromkeys(op.entries, "failed"))
                return  # what follows may depend on it: re-read and re-plan next round
            except NotFound as exc:
                # The presence went away meanwhile (deleted in MOCO): re-read and re-plan.
                await self._defer(op.entries, sending, exc)
                return
            except ApiError as exc:
                rest = [i for i in ids if i not in outcomes]
                await self._defer(rest, sending, exc)
                outcomes.update(dict.fromkeys(rest, "waiting"))
                return
            self._breaker.record_success()
            self._backoff.reset()
            self._staff.seen(user_id, written)
            await self._delivered(op.entries, by_id, written, "replayed")
            outcomes.update({i: _io(plan.clocked_in.get(i)) for i in op.entries})

    async def _write(self, user_id: int, op: Create | Update, priority: Priority) -> Presence:
        if isinstance(op, Create):
            return await self._client.create(user_id, op.day, op.start, op.end, priority=priority)
        return await self._client.update(user_id, op.presence_id, op.end, priority=priority)

    async def _delivered(
        self, ids: list[int], by_id: dict[int, Entry], presence: Presence | None, how: str
    ) -> None:
        for entry_id in ids:
            await self._outbox.mark_delivered(entry_id, str(presence.id) if presence else None)
            self.delivered += 1
            entry = by_id.get(entry_id)
            log.info(
                "moco_delivered",
                entry=entry_id,
                user_id=_user(entry) if entry else None,
                how=how,
                presence=presence.describe() if presence else None,
            )
            if entry is not None and self._on_delivered is not None:
                self._on_delivered(entry, how)

    async def _fail(self, ids: list[int], reason: str, *, user_id: int | None = None) -> None:
        for entry_id in ids:
            await self._outbox.mark_failed(entry_id, reason)
            self.failed += 1
            log.warning("moco_tap_not_recorded", entry=entry_id, user_id=user_id, reason=reason)

    async def _defer(self, ids: list[int], sending: set[int], exc: ApiError) -> None:
        """Wait and try again. A tap once marked ``sending`` stays so (its replay looks
        in MOCO before writing): always safe, and simpler than knowing which request of
        which attempt may have landed."""
        if isinstance(exc, RateLimited):
            delay = exc.retry_after
        elif isinstance(exc, Unauthorized):
            self._breaker.record_success()  # an answer: MOCO is reachable
            delay = AUTH_PAUSE
        elif isinstance(exc, NoSlot | NotFound):
            delay = 0.5
        else:
            if isinstance(exc, Unavailable):
                self._breaker.record_failure(str(exc))
            delay = self._backoff.next_delay()
        for entry_id in ids:
            await self._outbox.defer(
                entry_id,
                str(exc),
                delay,
                outcome_unknown=entry_id in sending,
            )
        log.warning("moco_deferred", entries=len(ids), error=str(exc), retry_in_s=round(delay, 1))


def _user(entry: Entry) -> int:
    return int(entry.membership_id or 0)


def _io(clocked_in: bool | None) -> str:
    return "done" if clocked_in is None else ("in" if clocked_in else "out")
