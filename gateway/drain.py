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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from gateway.breaker import Breaker
from gateway.cache import TokenCache
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
from gateway.model import CheckIn
from gateway.outbox import Entry, Kind, Outbox, State
from gateway.readers.backoff import Backoff
from gateway.redact import redact

log = structlog.get_logger(__name__)

IDLE_POLL = 5.0  # seconds between looks at the queue when nothing wakes the drainer
AUTH_PAUSE = 300.0  # after a 401/403: a person has to fix the token
RETRY_INITIAL = 1.0
RETRY_MAX = 120.0
PROBE_LOGIN = "checkin-gateway-probe@invalid"  # answered with 404: proves the API is up

DeliveryHook = Callable[[Entry, "CheckIn | None", str], None]
"""Called after an entry left the queue: (entry, Cobot's check-in, "sent"/"found"/...)."""


class Drainer:
    def __init__(
        self,
        outbox: Outbox,
        client: CobotClient,
        cache: TokenCache,
        breaker: Breaker,
        cfg: QueueSection,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        hooks: list[DeliveryHook] | None = None,
    ) -> None:
        self._hooks = hooks or []
        self._outbox = outbox
        self._client = client
        self._cache = cache
        self._breaker = breaker
        self._cfg = cfg
        self._now = now
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
            entries = await self._outbox.head()
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
        now = time.time()
        for entry in entries:
            if entry.id in self._inflight:
                continue
            if entry.next_attempt_at > now:
                return entry.next_attempt_at - now  # head-of-line: keep the order
            ok = await self.deliver(entry, Priority.REPLAY)
            if not ok:
                return max(0.1, self._breaker.probe_due_in())
        return 0.0

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
            await self._cache.prune_active(self._now())
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
        sent = False
        try:
            if entry.state is State.SENDING and entry.kind is Kind.CHECK_IN:
                # A previous attempt may have landed: look before sending again.
                found = await self._find_existing(entry, priority)
                if found is not None:
                    await self._delivered(entry, found, log_, how="found")
                    return True
            await self._outbox.mark_sending(entry.id)
            sent = True
            result = await self._send(entry, priority)
        except Refused as exc:
            if entry.kind is Kind.CHECK_IN:
                found = await self._lookup_quietly(entry, priority)
                if found is not None or _already_checked_in(exc):
                    # Someone got there first (an earlier attempt whose answer was lost,
                    # or the member elsewhere that day): the day is billed once.
                    await self._delivered(entry, found, log_, how="already-checked-in")
                    return True
            await self._outbox.mark_failed(entry.id, exc.reason)
            self.failed += 1
            for hook in self._hooks:
                hook(entry, None, f"refused: {exc.reason}")
            log_.warning("delivery_refused", reason=exc.reason, token=redact(entry.token))
            return True
        except RateLimited as exc:
            await self._outbox.defer(
                entry.id,
                str(exc),
                exc.retry_after,
                outcome_unknown=not sent and entry.state is State.SENDING,
            )
            return False
        except Unauthorized as exc:
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
            self._breaker.record_failure(str(exc))
            delay = self._backoff.next_delay()
            await self._outbox.defer(entry.id, str(exc), delay, outcome_unknown=unknown)
            log_.debug("delivery_deferred", error=str(exc), retry_in_s=delay, unknown=unknown)
            return False
        self._breaker.record_success()
        self._backoff.reset()
        await self._delivered(entry, result, log_, how="sent")
        return True

    async def _send(self, entry: Entry, priority: Priority) -> CheckIn | None:
        if entry.kind is Kind.CHECK_OUT:
            assert entry.membership_id is not None
            # 404 (not checked in) is as good as done: the member is out.
            return await self._client.check_out(entry.membership_id, priority=priority)
        age = (self._now() - entry.tapped_at).total_seconds()
        if (
            self._cfg.replay_with_valid_from
            and entry.membership_id
            and (age > self._cfg.valid_from_after)
        ):
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
        if entry.kind is Kind.CHECK_IN and result is not None and entry.membership_id:
            await self._cache.mark_checked_in(entry.membership_id, result.valid_until)
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
    had begun by now (yesterday's check-in does not cover today's tap)."""
    return check_in.valid_until >= entry.tapped_at and check_in.valid_from <= now


__all__ = ["Drainer"]
