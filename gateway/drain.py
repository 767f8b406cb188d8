"""Delivering the outbox to Cobot exactly once, live entries first.

Each failure means something different:
- no answer in time / dropped connection / 5xx / garbage: the outcome is unknown; the
  entry stays ``sending`` and the next attempt first looks whether Cobot has it;
- connection refused: nothing was sent; try again later;
- 429: wait the ``Retry-After`` (the limiter blocks the whole group);
- 401/403: a person must fix the token; pause long, no retry storm;
- 422: final, recorded with the API's reason — except "already checked in", which means
  an earlier attempt (or the member elsewhere) got there: delivered.

Replays of taps older than ``queue.valid_from_after`` go through
``POST /api/memberships/:id/work_sessions`` with ``valid_from`` = the tap time, so the
member is billed for when they really arrived.

A refusal of one request is not an outage: only an API out of reach opens the breaker,
and an entry that cannot go now (deferred, refused a scope) does not hold up the entries
of other members behind it; one member's entries still go in order.

A tap read before the wall clock was synchronised is corrected from the monotonic clock
once it is (same boot), and never back-dated before: see ``gateway/clock.py``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import structlog

from gateway.attendance import Attendance
from gateway.breaker import Breaker
from gateway.clock import Clock, SystemClock, corrected_time
from gateway.cobot.client import CobotClient
from gateway.cobot.errors import (
    ApiError,
    MalformedResponse,
    NotFound,
    RateLimited,
    Refused,
    Unauthorized,
    Unavailable,
)
from gateway.cobot.ratelimit import Priority
from gateway.config.model import QueueSection
from gateway.errors import StorageError
from gateway.model import CheckIn, ClockQuality, RecordKind
from gateway.outbox import Entry, Outbox, State
from gateway.readers.backoff import Backoff
from gateway.redact import redact

log = structlog.get_logger(__name__)

IDLE_POLL = 5.0  # seconds between looks at the queue when nothing wakes the drainer
AUTH_PAUSE = 300.0  # after a 401/403: a person has to fix the token
RETRY_INITIAL = 1.0
RETRY_MAX = 120.0
CLOCK_WAIT = 30.0  # seconds between looks at an unsynchronised clock
PROBE_LOGIN = "checkin-gateway-probe@invalid"  # answered with 404: proves the API is up

DeliveryHook = Callable[[Entry, "CheckIn | None", str], None]
"""Called after an entry left the queue: (entry, Cobot's check-in, "sent"/"found"/...)."""


class Drainer:
    def __init__(
        self,
        outbox: Outbox,
        client: CobotClient,
        attendance: Attendance,
        breaker: Breaker,
        cfg: QueueSection,
        *,
        clock: Clock | None = None,
        backend: str = "cobot",
        hooks: list[DeliveryHook] | None = None,
    ) -> None:
        self._hooks = hooks or []
        self._outbox = outbox
        self._client = client
        self._attendance = attendance
        self._breaker = breaker
        self._cfg = cfg
        self._clock = clock or SystemClock()
        self._now: Callable[[], datetime] = self._clock.now
        self._backend = backend
        self._wake = asyncio.Event()
        self._inflight: set[int] = set()
        self._backoff = Backoff(initial=RETRY_INITIAL, maximum=RETRY_MAX)
        self.delivered = 0
        self.failed = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            delay = await self._round()
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _round(self) -> float:
        """Deliver what is due, in order; return how long to sleep before the next round."""
        try:
            await self._outbox.load()  # the CLI may have retried/dropped entries
            entries = await self._outbox.head(backend=self._backend)
        except (StorageError, OSError) as exc:
            log.error("outbox_unreadable", error=str(exc))
            return RETRY_MAX
        if not entries:
            if self._breaker.is_open:
                return await self._probe()
            await self._housekeeping()
            return IDLE_POLL
        if self._breaker.is_open and self._breaker.probe_due_in() > 0:
            return self._breaker.probe_due_in()
        sleep = IDLE_POLL
        attempted = False
        waiting: set[str | None] = set()  # members whose earlier entry cannot go yet
        for entry in entries:
            key = entry.membership_id or entry.token
            if entry.id in self._inflight or key in waiting:
                waiting.add(key)
                continue
            due_in = entry.next_attempt_at - time.time()
            if due_in > 0:
                waiting.add(key)  # this member's later entries wait; others go on
                sleep = min(sleep, due_in)
                continue
            attempted = True
            if not await self.deliver(entry, Priority.REPLAY):
                waiting.add(key)
                if self._breaker.is_open:
                    return max(0.1, self._breaker.probe_due_in())
                sleep = min(sleep, 0.1)  # re-read: it was deferred
                continue
            sleep = 0.0
        if self._breaker.is_open and not attempted:
            # Nothing due could serve as the probe: probe on its own, or the breaker
            # would keep live taps offline while every entry waits.
            return min(sleep, await self._probe())
        return sleep

    async def _probe(self) -> float:
        due = self._breaker.probe_due_in()
        if due > 0:
            return due
        try:
            await self._client.check_in_status(login=PROBE_LOGIN, priority=Priority.SYNC)
        except (Unavailable, MalformedResponse) as exc:
            self._breaker.record_failure(str(exc))
            return self._breaker.probe_due_in()
        except ApiError:
            pass  # any HTTP answer (401, 429...) shows the API is reachable
        self._breaker.record_success()
        return 0.0

    async def _housekeeping(self) -> None:
        try:
            await self._outbox.purge_delivered()
        except StorageError as exc:
            log.warning("housekeeping_failed", error=str(exc))

    async def deliver_id(self, entry_id: int, priority: Priority = Priority.LIVE) -> bool:
        entry = await self._outbox.get(entry_id)
        if entry is None or entry.state not in (State.PENDING, State.SENDING):
            return True
        if await self._outbox.has_older_open(entry):
            self.wake()  # the drain delivers this member's entries in order
            return False
        return await self.deliver(entry, priority)

    async def deliver(self, entry: Entry, priority: Priority) -> bool:
        """One attempt at one entry; True when it left the queue (delivered or final)."""
        if entry.id in self._inflight:
            return False
        self._inflight.add(entry.id)
        log_ = log.bind(entry=entry.id, kind=entry.kind.value, membership_id=entry.membership_id)
        try:
            return await self._attempt(entry, priority, log_)
        except StorageError as exc:
            log_.error("outbox_write_failed", error=str(exc))
            return False
        finally:
            self._inflight.discard(entry.id)

    async def _attempt(
        self, entry: Entry, priority: Priority, log_: structlog.typing.FilteringBoundLogger
    ) -> bool:
        settled = await self._settle_time(entry, log_)
        if settled is None:
            return False
        entry = settled
        sent = False
        try:
            if entry.state is State.SENDING and entry.kind is RecordKind.CHECK_IN:
                # A previous attempt may have landed: look before sending again.
                found = await self._find_existing(entry, priority)
                if found is not None:
                    await self._delivered(entry, found, log_, how="found")
                    return True
            if not await self._outbox.mark_sending(entry.id):
                log_.info("not_sent", why="dropped by an operator meanwhile")
                return True
            sent = True
            result = await self._send(entry, priority)
        except Refused as exc:
            return await self._refused(entry, exc, priority, log_)
        except RateLimited as exc:
            await self._outbox.defer(
                entry.id,
                str(exc),
                exc.retry_after,
                outcome_unknown=not sent and entry.state is State.SENDING,
            )
            return False
        except Unauthorized as exc:
            self._breaker.record_success()  # an answer: the API is reachable
            await self._outbox.defer(
                entry.id,
                str(exc),
                AUTH_PAUSE,
                outcome_unknown=not sent and entry.state is State.SENDING,
            )
            return False
        except (Unavailable, MalformedResponse) as exc:
            if sent:
                unknown = not isinstance(exc, Unavailable) or exc.outcome_unknown
            else:  # failed while looking: whatever we knew before still holds
                unknown = entry.state is State.SENDING
            if isinstance(exc, Unavailable):
                self._breaker.record_failure(str(exc))
            delay = self._backoff.next_delay()
            await self._outbox.defer(entry.id, str(exc), delay, outcome_unknown=unknown)
            log_.debug("delivery_deferred", error=str(exc), retry_in_s=delay, unknown=unknown)
            return False
        self._breaker.record_success()
        self._backoff.reset()
        await self._delivered(entry, result, log_, how="sent")
        return True

    async def _refused(
        self,
        entry: Entry,
        exc: Refused,
        priority: Priority,
        log_: structlog.typing.FilteringBoundLogger,
    ) -> bool:
        self._breaker.record_success()  # an answer: the API is reachable
        reason = exc.reason
        if entry.kind is RecordKind.CHECK_IN:
            found = await self._lookup_quietly(entry, priority)
            if found is not None or (_already_checked_in(exc) and self._asked_for_tap_day(entry)):
                # Someone got there first (an earlier attempt whose answer was lost, or
                # the member elsewhere that day): the day is billed once.
                await self._delivered(entry, found, log_, how="already-checked-in")
                return True
            if _already_checked_in(exc):
                # Cobot's day is not the tap's day: this visit is not billed yet.
                reason = f"{reason} (but not for the day of this tap: not billed)"
        await self._outbox.mark_failed(entry.id, reason)
        self.failed += 1
        for hook in self._hooks:
            hook(entry, None, f"refused: {reason}")
        log_.warning("delivery_refused", reason=reason, token=redact(entry.token))
        return True

    async def _settle_time(
        self, entry: Entry, log_: structlog.typing.FilteringBoundLogger
    ) -> Entry | None:
        """The entry with a tap time fit to bill by, or None while it must wait.

        A tap read on an unsynchronised clock is corrected from the monotonic clock once
        the clock is synchronised in the same boot; from an earlier boot its day cannot
        be known, so it is recorded as of delivery (never back-dated)."""
        if entry.clock is not ClockQuality.UNSYNCED:
            return entry
        reference = self._clock.reference_now()
        if reference is None:
            await self._outbox.defer(
                entry.id,
                "waiting for the clock to be synchronised before sending",
                CLOCK_WAIT,
                outcome_unknown=entry.state is State.SENDING,
            )
            return None
        fixed = corrected_time(
            entry.tapped_at,
            entry.tapped_mono,
            entry.boot_id,
            now=reference,
            monotonic=self._clock.monotonic(),
            boot_id=self._clock.boot_id(),
        )
        quality = ClockQuality.NOW if fixed is None else ClockQuality.CORRECTED
        tapped_at = reference if fixed is None else fixed
        await self._outbox.correct_time(entry.id, tapped_at, quality)
        log_.warning(
            "tap_time_corrected" if fixed else "tap_day_unknown",
            read_as=entry.tapped_at.isoformat(),
            now_billed_at=tapped_at.isoformat(),
            why="read before the clock was synchronised"
            + ("" if fixed else ", in an earlier boot: recorded as of delivery"),
        )
        return replace(entry, tapped_at=tapped_at, clock=quality)

    def _asked_for_tap_day(self, entry: Entry) -> bool:
        """Whether the request just refused asked about the tap's own day: a replay with
        ``valid_from`` = the tap time, or a plain check-in on the tap's local day."""
        if entry.clock is ClockQuality.NOW:
            return False
        if self._with_valid_from(entry):
            return True
        return entry.tapped_at.astimezone().date() == self._now().astimezone().date()

    def _with_valid_from(self, entry: Entry) -> bool:
        age = (self._now() - entry.tapped_at).total_seconds()
        return bool(
            self._cfg.replay_with_valid_from
            and entry.membership_id
            and entry.clock is not ClockQuality.NOW
            and age > self._cfg.valid_from_after
        )

    async def _send(self, entry: Entry, priority: Priority) -> CheckIn | None:
        if entry.kind is RecordKind.CHECK_OUT:
            assert entry.membership_id is not None
            # 404 (not checked in) is as good as done: the member is out.
            return await self._client.check_out(entry.membership_id, priority=priority)
        if self._with_valid_from(entry):
            assert entry.membership_id is not None
            return await self._client.create_work_session(
                entry.membership_id, valid_from=entry.tapped_at, priority=priority
            )
        assert entry.token is not None
        return (await self._client.check_in(token=entry.token, priority=priority)).check_in

    async def _find_existing(self, entry: Entry, priority: Priority) -> CheckIn | None:
        """A check-in at Cobot that already covers this tap, or None."""
        if entry.membership_id:
            try:
                found = await self._client.list_check_ins(
                    entry.membership_id,
                    entry.tapped_at - timedelta(days=1),
                    self._now() + timedelta(days=1),
                    priority=priority,
                )
            except (Unauthorized, NotFound):
                found = []  # no read_check_ins scope: fall back to the status endpoint
            else:
                return next((c for c in found if _covers(c, entry, self._now())), None)
        if entry.token:
            active = await self._client.check_in_status(token=entry.token, priority=priority)
            if active is not None and _covers(active, entry, self._now()):
                return active
        return None

    async def _lookup_quietly(self, entry: Entry, priority: Priority) -> CheckIn | None:
        try:
            return await self._find_existing(entry, priority)
        except ApiError:
            return None

    async def _delivered(
        self,
        entry: Entry,
        result: CheckIn | None,
        log_: structlog.typing.FilteringBoundLogger,
        *,
        how: str,
    ) -> None:
        await self._outbox.mark_delivered(entry.id, result.id if result else None)
        self.delivered += 1
        if entry.kind is RecordKind.CHECK_IN and result is not None and entry.membership_id:
            await self._attendance.checked_in(
                entry.membership_id, result.valid_until, entry.tapped_at
            )
        for hook in self._hooks:
            hook(entry, result, how)
        log_.info(
            "delivered",
            how=how,
            attempts=entry.attempts + 1,
            age_s=round((self._now() - entry.tapped_at).total_seconds(), 1),
        )


def _already_checked_in(exc: Refused) -> bool:
    """Cobot's 422 for a second work session on one day. The docs give no wording; the
    simulator's is "Already checked in for that day."; the match is on its core words."""
    return "already checked in" in exc.reason.lower()


def _covers(check_in: CheckIn, entry: Entry, now: datetime) -> bool:
    """Cobot holds a check-in that bills this tap: it is still valid at the tap time and
    had begun by now (yesterday's check-in does not cover today's tap), and began on the
    tap's day or the day before (a tap whose day is unknown is covered by nothing)."""
    if entry.clock is ClockQuality.NOW:
        return False
    return (
        check_in.valid_until >= entry.tapped_at
        and check_in.valid_from <= now
        and check_in.valid_from <= entry.tapped_at + timedelta(days=1)
    )


__all__ = ["Drainer"]
