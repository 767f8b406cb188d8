"""Cobot as a record backend: check-ins and check-outs through the durable outbox.

A tap's record is committed ``held`` before the door moves and released once it opened
(gateway/outbox.py). The commit has a small budget (``TAP_COMMIT_BUDGET``): another
process holding the database, a full disk or the queue's bound must neither keep a
person waiting at the door nor lose the check-in. Such a record is kept in memory
(``Unsaved``): online it is delivered directly, offline it waits; either way it is
written to the outbox as soon as the database takes it again, in the state it reached
(delivered, failed, or still to send), so nothing is lost and nothing is sent twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from gateway.attendance import Attendance
from gateway.breaker import Breaker
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
from gateway.drain import Drainer
from gateway.errors import StorageError
from gateway.model import CheckIn, Membership, RecordKind, Tap
from gateway.outbox import Outbox, State
from gateway.records.background import Background, save_loop
from gateway.records.base import Hold
from gateway.redact import redact

log = structlog.get_logger(__name__)

NAME = "cobot"
TAP_COMMIT_BUDGET = 0.5  # seconds the tap path waits for our own database lock
SAVE_RETRY = 1.0  # seconds between attempts to store what memory holds
MAX_UNSAVED = 1000  # records held in memory while the database refuses them
CLOSE_GRACE = 2.0  # seconds in-flight live deliveries get at stop


@dataclass(slots=True)
class Unsaved:
    """A record the database did not take in time, and how far its delivery got."""

    kind: RecordKind
    tap: Tap
    member: Membership | None
    state: State = State.PENDING
    result_id: str | None = None
    error: str | None = None
    busy: bool = False  # a direct delivery is in flight: do not store it yet


class CobotRecords:
    def __init__(
        self,
        outbox: Outbox,
        drainer: Drainer,
        client: CobotClient,
        breaker: Breaker,
        attendance: Attendance,
    ) -> None:
        self._outbox = outbox
        self._drainer = drainer
        self._client = client
        self._breaker = breaker
        self._attendance = attendance
        self._unsaved: list[Unsaved] = []
        self._unreleased: set[int] = set()
        self._wake = asyncio.Event()
        self._background = Background()
        self._storage_error: str | None = None

    @property
    def name(self) -> str:
        return NAME

    @property
    def storage_error(self) -> str | None:
        return self._storage_error

    @property
    def unsaved(self) -> int:
        """Records in memory only (shown by status: lost if the gateway stops now)."""
        return len(self._unsaved) + len(self._unreleased)

    # --- the tap path -----------------------------------------------------------------

    def takes(self, kind: RecordKind | None, tap: Tap) -> bool:
        """Check-ins and check-outs; a MOCO ``touch`` is not Cobot's."""
        del tap
        return kind in (RecordKind.CHECK_IN, RecordKind.CHECK_OUT)

    async def hold(self, kind: RecordKind, tap: Tap, member: Membership | None) -> Hold:
        try:
            entry_id: int | None = await self._outbox.add(
                kind,
                token=tap.token,
                membership_id=member.id if member else None,
                reader=tap.reader,
                tapped_at=tap.at,
                state=State.HELD,
                backend=NAME,
                clock=tap.clock,
                boot_id=tap.boot_id,
                tapped_mono=tap.mono,
                budget=TAP_COMMIT_BUDGET,
            )
        except StorageError as exc:
            self._storage_error = str(exc)
            log.error(
                "record_not_stored",
                reader=tap.reader,
                token=redact(tap.token),
                membership_id=member.id if member else None,
                error=str(exc),
                kept="in memory until the database takes it",
            )
            entry_id = None
        else:
            self._storage_error = None
        return Hold(NAME, kind, tap, member, entry_id)

    async def release(self, hold: Hold, *, live: bool) -> None:
        if hold.entry_id is None:
            self._keep(hold, live=live)
            return
        try:
            await self._outbox.release(hold.entry_id)
        except StorageError as exc:
            # The door opened: the record must not stay held (held rows found at start
            # are not billed). Memory retries until the database takes it.
            log.warning("record_release_deferred", entry=hold.entry_id, error=str(exc))
            self._unreleased.add(hold.entry_id)
            self._wake.set()
            return
        if live:
            self._background.spawn(self._drainer.deliver_id(hold.entry_id, Priority.LIVE))
        else:
            self._drainer.wake()

    async def discard(self, hold: Hold) -> None:
        if hold.entry_id is None:
            return
        try:
            await self._outbox.discard_held(hold.entry_id)
        except StorageError as exc:
            # Still held: at the next start it is kept as failed, never billed.
            log.error("record_discard_failed", entry=hold.entry_id, error=str(exc))

    def _keep(self, hold: Hold, *, live: bool) -> None:
        if hold.kind is RecordKind.CHECK_IN and hold.member is not None:
            day = hold.tap.at.astimezone().date()
            for kept in self._unsaved:
                if (
                    kept.kind is RecordKind.CHECK_IN
                    and kept.member == hold.member
                    and kept.tap.at.astimezone().date() == day
                ):
                    return  # one check-in a day is billed once: this one is covered
        if len(self._unsaved) >= MAX_UNSAVED:
            log.error("record_lost", token=redact(hold.tap.token), reason="memory bound reached")
            return
        item = Unsaved(hold.kind, hold.tap, hold.member)
        self._unsaved.append(item)
        if live:
            item.busy = True
            self._background.spawn(self._deliver_directly(item))
        self._wake.set()

    # --- delivery -------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._drainer.run(), name="outbox-drain")
            tg.create_task(self._save_loop(), name="outbox-save")

    async def _save_loop(self) -> None:
        await save_loop(
            self._wake, lambda: bool(self._unsaved or self._unreleased), self._save_once, SAVE_RETRY
        )

    async def _save_once(self) -> None:
        for entry_id in list(self._unreleased):
            try:
                await self._outbox.release(entry_id)
            except StorageError:
                return
            self._unreleased.discard(entry_id)
            self._drainer.wake()
        for item in list(self._unsaved):
            if item.busy:
                continue
            try:
                await self._outbox.add(
                    item.kind,
                    token=item.tap.token,
                    membership_id=item.member.id if item.member else None,
                    reader=item.tap.reader,
                    tapped_at=item.tap.at,
                    state=item.state,
                    backend=NAME,
                    clock=item.tap.clock,
                    boot_id=item.tap.boot_id,
                    tapped_mono=item.tap.mono,
                    result_id=item.result_id,
                    last_error=item.error,
                )
            except StorageError as exc:
                self._storage_error = str(exc)
                return
            self._unsaved.remove(item)
            self._storage_error = None
            log.info("record_stored_late", state=item.state.value, token=redact(item.tap.token))
            self._drainer.wake()

    async def _deliver_directly(self, item: Unsaved) -> None:
        """Online and not stored: send it now, as the outbox would have."""
        try:
            result = await self._send(item)
        except Refused as exc:
            item.state, item.error = State.FAILED, exc.reason
            log.warning("delivery_refused", reason=exc.reason, token=redact(item.tap.token))
        except Unavailable as exc:
            self._breaker.record_failure(str(exc))
            item.state = State.SENDING if exc.outcome_unknown else State.PENDING
            item.error = str(exc)
        except MalformedResponse as exc:
            item.state, item.error = State.SENDING, str(exc)  # sent: the outcome is unknown
        except (RateLimited, NoSlot, Unauthorized, ApiError) as exc:
            item.state, item.error = State.PENDING, str(exc)
        else:
            self._breaker.record_success()
            item.state = State.DELIVERED
            item.result_id = result.id if result else None
            if result is not None and item.member and item.kind is RecordKind.CHECK_IN:
                await self._attendance.checked_in(item.member.id, result.valid_until)
            log.info("delivered", how="direct", token=redact(item.tap.token))
        finally:
            item.busy = False
            self._wake.set()

    async def _send(self, item: Unsaved) -> CheckIn | None:
        if item.kind is RecordKind.CHECK_OUT:
            assert item.member is not None
            return await self._client.check_out(item.member.id, priority=Priority.LIVE)
        return (await self._client.check_in(token=item.tap.token, priority=Priority.LIVE)).check_in

    async def aclose(self) -> None:
        await self._background.close(CLOSE_GRACE)
        if self._unsaved or self._unreleased:
            await self._save_once()  # one last try: the database may be free now
        for item in self._unsaved:
            log.error(
                "record_lost_at_stop",
                kind=item.kind.value,
                state=item.state.value,
                token=redact(item.tap.token),
                membership_id=item.member.id if item.member else None,
            )
