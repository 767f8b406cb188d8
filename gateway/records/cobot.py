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
from gateway.model import CheckIn, Membership, RecordKind, Tap
from gateway.outbox import Outbox, State
from gateway.records.background import Background
from gateway.records.base import Hold
from gateway.records.keeper import Keeper, Unsaved
from gateway.redact import redact

log = structlog.get_logger(__name__)

NAME = "cobot"
CLOSE_GRACE = 2.0  # seconds in-flight live deliveries get at stop


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
        self._keeper = Keeper(outbox, NAME, drainer.wake)
        self._background = Background()

    @property
    def name(self) -> str:
        return NAME

    @property
    def storage_error(self) -> str | None:
        return self._keeper.storage_error

    @property
    def unsaved(self) -> int:
        """Records in memory only (shown by status: lost if the gateway stops now)."""
        return self._keeper.unsaved

    # --- the tap path -----------------------------------------------------------------

    def takes(self, kind: RecordKind | None, tap: Tap) -> bool:
        """Check-ins and check-outs; a MOCO ``touch`` is not Cobot's."""
        del tap
        return kind in (RecordKind.CHECK_IN, RecordKind.CHECK_OUT)

    async def hold(self, kind: RecordKind, tap: Tap, member: Membership | None) -> Hold:
        entry_id = await self._keeper.hold(kind, tap, member.id if member else None)
        return Hold(NAME, kind, tap, member, entry_id)

    async def release(self, hold: Hold, *, live: bool) -> None:
        if hold.entry_id is None:
            self._keep(hold, live=live)
        elif not await self._keeper.release(hold.entry_id):
            return  # memory retries the release; delivery follows it
        elif live:
            self._background.spawn(self._drainer.deliver_id(hold.entry_id, Priority.LIVE))
        else:
            self._drainer.wake()

    async def discard(self, hold: Hold) -> None:
        if hold.entry_id is not None:
            await self._keeper.discard(hold.entry_id)

    def _keep(self, hold: Hold, *, live: bool) -> None:
        subject = hold.member.id if hold.member else None
        if hold.kind is RecordKind.CHECK_IN and subject is not None:
            day = hold.tap.at.astimezone().date()
            for kept in self._keeper.items:
                if (
                    kept.kind is RecordKind.CHECK_IN
                    and kept.subject == subject
                    and kept.tap.at.astimezone().date() == day
                ):
                    return  # one check-in a day is billed once: this one is covered
        item = Unsaved(hold.kind, hold.tap, subject, busy=live)
        if self._keeper.keep(item) and live:
            self._background.spawn(self._deliver_directly(item))

    # --- delivery -------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._drainer.run(), name="outbox-drain")
            tg.create_task(self._keeper.run(), name="outbox-save")

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
            if result is not None and item.subject and item.kind is RecordKind.CHECK_IN:
                await self._attendance.checked_in(item.subject, result.valid_until, item.tap.at)
            log.info("delivered", how="direct", token=redact(item.tap.token))
        finally:
            item.busy = False
            self._keeper.wake()

    async def _send(self, item: Unsaved) -> CheckIn | None:
        if item.kind is RecordKind.CHECK_OUT:
            assert item.subject is not None
            return await self._client.check_out(item.subject, priority=Priority.LIVE)
        return (await self._client.check_in(token=item.tap.token, priority=Priority.LIVE)).check_in

    async def aclose(self) -> None:
        await self._background.close(CLOSE_GRACE)
        await self._keeper.close()
