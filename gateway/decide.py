"""Where a tap becomes a door decision and a check-in.

Online, Cobot's preview gates the door: 200 opens it (the real check-in follows through
the outbox), 422 keeps it shut with the API's reason. A member still checked in today
re-enters with no API call. When the API cannot answer within the deadline, or the
breaker knows it is down, the decision is local: ``known-tokens`` lets cached tokens in
and queues their check-in durably; ``deny`` keeps everyone out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from gateway.breaker import Breaker
from gateway.cache import TokenCache
from gateway.cobot.client import CobotClient
from gateway.cobot.errors import (
    ApiError,
    MalformedResponse,
    NoSlot,
    RateLimited,
    Refused,
    Unauthorized,
    Unavailable,
)
from gateway.cobot.ratelimit import Priority
from gateway.doors.base import Door
from gateway.drain import Drainer
from gateway.errors import DoorError, StorageError
from gateway.model import Direction, Membership, OfflinePolicy, Outcome, Signal, Tap
from gateway.outbox import Kind, Outbox
from gateway.redact import redact

log = structlog.get_logger(__name__)

DECISION_DEADLINE = 1.5  # seconds a person waits for the API before we decide locally


@dataclass(frozen=True, slots=True)
class Decision:
    tap: Tap
    outcome: Outcome
    membership: Membership | None
    reason: str | None  # the API's words on a refusal, or why we decided locally
    opened: bool
    latency_ms: float  # tap read -> door command issued (or refusal known)
    preview_ms: float | None = None


DecisionHook = Callable[[Decision], None]


class Decider:
    def __init__(
        self,
        cache: TokenCache,
        client: CobotClient,
        outbox: Outbox,
        drainer: Drainer,
        breaker: Breaker,
        *,
        policy: OfflinePolicy,
        deadline: float = DECISION_DEADLINE,
        hooks: list[DecisionHook] | None = None,
    ) -> None:
        self._cache = cache
        self._client = client
        self._outbox = outbox
        self._drainer = drainer
        self._breaker = breaker
        self._policy = policy
        self._deadline = deadline
        self._hooks = hooks or []
        self._background: set[asyncio.Task[object]] = set()
        # The last time a check-in could not be stored (disk full, queue at its bound):
        # shown by `status` until a later one is stored again.
        self.storage_error: str | None = None

    async def decide(self, tap: Tap, door: Door | None) -> Decision:
        if tap.direction is Direction.OUT:
            decision = await self._check_out(tap, door)
        else:
            decision = await self._check_in(tap, door)
        log.info(
            "tap",
            reader=tap.reader,
            token=redact(tap.token),
            membership_id=decision.membership.id if decision.membership else None,
            outcome=decision.outcome.value,
            opened=decision.opened,
            reason=decision.reason,
            latency_ms=round(decision.latency_ms, 2),
            preview_ms=None if decision.preview_ms is None else round(decision.preview_ms, 1),
        )
        for hook in self._hooks:
            hook(decision)
        return decision

    # --- in ------------------------------------------------------------------------

    async def _check_in(self, tap: Tap, door: Door | None) -> Decision:
        member = self._cache.lookup(tap.token)
        if member is not None and self._cache.checked_in_until(member.id, tap.at):
            opened_at = await self._open(door, Signal.GRANTED)
            return self._done(tap, Outcome.OPENED_CACHED, member, None, opened_at)

        why_local = self._breaker.last_error if self._breaker.is_open else None
        preview_ms: float | None = None
        if not self._breaker.is_open:
            started = time.monotonic()
            try:
                result = await self._client.check_in(
                    token=tap.token,
                    preview=True,
                    priority=Priority.LIVE,
                    deadline=self._deadline,
                )
            except Refused as exc:
                await self._signal(door, Signal.REFUSED)
                return self._done(
                    tap,
                    Outcome.REFUSED,
                    member,
                    exc.reason,
                    opened_at=None,
                    preview_ms=(time.monotonic() - started) * 1000,
                )
            except (Unavailable, MalformedResponse) as exc:
                self._breaker.record_failure(str(exc))
                why_local = str(exc)
            except (RateLimited, NoSlot, Unauthorized) as exc:
                # The API is up but will not answer us now: decide here, and do not
                # count it against the API (the breaker is for an API that is down).
                why_local = str(exc)
            else:
                self._breaker.record_success()
                preview_ms = (time.monotonic() - started) * 1000
                member = result.check_in.membership or member
                return await self._admit_online(
                    tap, door, member, result.check_in.valid_until, preview_ms
                )
        return await self._admit_offline(tap, door, member, why_local or "API unavailable")

    async def _admit_online(
        self,
        tap: Tap,
        door: Door | None,
        member: Membership | None,
        valid_until: datetime,
        preview_ms: float,
    ) -> Decision:
        entry_id = await self._queue(Kind.CHECK_IN, tap, member)
        opened_at = await self._open(door, Signal.GRANTED)
        if door is not None and opened_at is None:
            await self._unqueue(entry_id)
            return self._done(
                tap, Outcome.DOOR_FAILED, member, "door did not open", None, preview_ms
            )
        if member is not None:
            await self._cache.mark_checked_in(member.id, valid_until)
        if entry_id is not None:
            self._spawn(self._drainer.deliver_id(entry_id, Priority.LIVE))
        return self._done(tap, Outcome.OPENED_ONLINE, member, None, opened_at, preview_ms)

    async def _admit_offline(
        self, tap: Tap, door: Door | None, member: Membership | None, why: str
    ) -> Decision:
        if self._policy is OfflinePolicy.DENY or member is None:
            await self._signal(door, Signal.REFUSED)
            reason = "offline policy is deny" if member is not None else "token not in cache"
            return self._done(tap, Outcome.DENIED_OFFLINE, member, f"{reason} ({why})", None)
        entry_id = await self._queue(Kind.CHECK_IN, tap, member)
        opened_at = await self._open(door, Signal.OFFLINE)
        if door is not None and opened_at is None:
            await self._unqueue(entry_id)
            return self._done(tap, Outcome.DOOR_FAILED, member, "door did not open", None)
        # Re-entries today need neither the API nor another queued check-in.
        await self._cache.mark_checked_in(member.id, _end_of_local_day(tap.at))
        return self._done(tap, Outcome.OPENED_OFFLINE, member, why, opened_at)

    # --- out -----------------------------------------------------------------------

    async def _check_out(self, tap: Tap, door: Door | None) -> Decision:
        member = self._cache.lookup(tap.token)
        if member is None and not self._breaker.is_open:
            try:
                record = await self._client.get_token(
                    tap.token, priority=Priority.LIVE, deadline=self._deadline
                )
            except ApiError:
                record = None
            member = record.membership if record else None
        if member is None:
            await self._signal(door, Signal.REFUSED)
            return self._done(tap, Outcome.UNKNOWN_TOKEN, None, "token not known", None)
        entry_id = await self._queue(Kind.CHECK_OUT, tap, member)
        opened_at = await self._open(door, Signal.GRANTED)
        await self._cache.mark_checked_out(member.id)
        if entry_id is not None and not self._breaker.is_open:
            self._spawn(self._drainer.deliver_id(entry_id, Priority.LIVE))
            return self._done(tap, Outcome.CHECKED_OUT, member, None, opened_at)
        return self._done(tap, Outcome.CHECK_OUT_QUEUED, member, None, opened_at)

    # --- helpers ---------------------------------------------------------------------

    async def _queue(self, kind: Kind, tap: Tap, member: Membership | None) -> int | None:
        """Commit the check-in/out before the door moves. A full queue or disk must not
        keep a member out: the door still follows the decision, loudly logged."""
        try:
            entry_id = await self._outbox.add(
                kind,
                token=tap.token,
                membership_id=member.id if member else None,
                reader=tap.reader,
                tapped_at=tap.at,
            )
        except StorageError as exc:
            self.storage_error = str(exc)
            log.error(
                "check_in_not_queued",
                reader=tap.reader,
                token=redact(tap.token),
                membership_id=member.id if member else None,
                error=str(exc),
            )
            return None
        self.storage_error = None
        return entry_id

    async def _unqueue(self, entry_id: int | None) -> None:
        if entry_id is None:
            return
        try:
            await self._outbox.drop(entry_id)
            await self._outbox.load()
        except StorageError as exc:
            log.error("unqueue_failed", entry=entry_id, error=str(exc))

    async def _open(self, door: Door | None, signal: Signal) -> float | None:
        """Open the door; the moment it was commanded (for latency), or None."""
        if door is None:
            return None
        try:
            await door.open()
        except DoorError as exc:
            log.error("door_failed", door=door.name, error=str(exc))
            return None
        opened_at = time.monotonic()
        await self._signal(door, signal)
        return opened_at

    async def _signal(self, door: Door | None, signal: Signal) -> None:
        if door is not None:
            self._spawn(door.signal(signal))  # feedback must not delay the next tap

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _done(
        self,
        tap: Tap,
        outcome: Outcome,
        member: Membership | None,
        reason: str | None,
        opened_at: float | None,
        preview_ms: float | None = None,
    ) -> Decision:
        """The decision; its latency ends when the door was commanded (bookkeeping after
        that, like remembering the check-in, does not keep anyone waiting)."""
        return Decision(
            tap=tap,
            outcome=outcome,
            membership=member,
            reason=reason,
            opened=opened_at is not None,
            latency_ms=((opened_at or time.monotonic()) - tap.mono) * 1000,
            preview_ms=preview_ms,
        )

    async def aclose(self) -> None:
        """Wait briefly for in-flight check-ins (they are queued durably anyway)."""
        if self._background:
            await asyncio.wait(self._background, timeout=2.0)
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


def _end_of_local_day(at: datetime) -> datetime:
    """Offline we do not know the space's time zone; the gateway's own is the best guess
    (a Pi in the space runs on local time)."""
    local = at.astimezone()
    end = local.replace(hour=23, minute=59, second=59, microsecond=0)
    return (end if end > local else end + timedelta(days=1)).astimezone(UTC)
