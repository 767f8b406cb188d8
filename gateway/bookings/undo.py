"""Walk-up bookings whose door did not open are taken back.

A walk-up booking is made while the tap is judged (``rules/booking.py``): Cobot's answer
(201, or 422 with its reason) decides whether the door opens, so it cannot wait until
after the door as a check-in does. It is priced like any booking of the room, so a
door that then fails to open (a dead relay, a command that times out) would leave the
member billed for a room they could not enter: the door/bill kind of fault (issue 10
case 1). Here the booking is the record, and "discard" is deleting it.

The rule tells ``made(tap, booking)``; the decision's hook (``decided``) tells whether
that tap's door opened. Door failed: the booking is queued for deletion, which ``run``
(a supervised part) sends with a deadline and a few retries, and takes out of the
snapshot. Door opened, or the decision never came: it stands (a booking made and not
used is what a member who walked away would have too).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING

import structlog

from gateway.bookings.snapshot import BookingSnapshot
from gateway.cobot.bookings import Booking, delete_booking
from gateway.cobot.client import CobotClient
from gateway.cobot.errors import ApiError, NotFound, Refused
from gateway.model import Outcome, Tap
from gateway.redact import redact

if TYPE_CHECKING:
    from gateway.decide import Decision

log = structlog.get_logger(__name__)

DELETE_DEADLINE = 10.0  # seconds per attempt, the booking-write slot included
ATTEMPTS = 5
RETRY_AFTER = 30.0  # seconds between attempts
PENDING_BOUND = 64  # walk-ups awaiting their decision (a decision comes within seconds)


class WalkUpUndo:
    def __init__(
        self,
        client: CobotClient,
        snapshot: BookingSnapshot,
        *,
        retry_after: float = RETRY_AFTER,
    ) -> None:
        self._client = client
        self._snapshot = snapshot
        self._retry_after = retry_after
        self._pending: OrderedDict[int, tuple[Tap, Booking]] = OrderedDict()
        self._queue: asyncio.Queue[Booking] = asyncio.Queue()
        self.undone = 0  # bookings deleted because their door failed
        self.failed = 0  # ... that could not be deleted (logged for the staff)

    def made(self, tap: Tap, booking: Booking) -> None:
        """The rule booked the room for this tap; its door has not moved yet."""
        self._pending[id(tap)] = (tap, booking)
        while len(self._pending) > PENDING_BOUND:
            self._pending.popitem(last=False)

    def decided(self, decision: Decision) -> None:
        """A decision hook: a walk-up whose door failed is queued for deletion."""
        found = self._pending.pop(id(decision.tap), None)
        if found is None or found[0] is not decision.tap:
            return
        booking = found[1]
        if decision.outcome is Outcome.DOOR_FAILED:
            log.warning(
                "walk_up_door_failed",
                booking_id=booking.id,
                member=redact(booking.membership.name) if booking.membership else None,
                action="deleting the booking: the member could not enter",
            )
            self._queue.put_nowait(booking)

    async def run(self) -> None:
        """Delete the queued bookings (a supervised part)."""
        while True:
            booking = await self._queue.get()
            try:
                await self._delete(booking)
            finally:
                self._queue.task_done()

    async def settle(self) -> None:
        """Until every queued deletion was tried (tests)."""
        await self._queue.join()

    async def _delete(self, booking: Booking) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await delete_booking(self._client, booking.id, deadline=DELETE_DEADLINE)
            except NotFound:
                pass  # gone already
            except Refused as exc:  # 409: an event's booking; nothing we can do
                self._gave_up(booking, str(exc))
                return
            except ApiError as exc:
                if attempt == ATTEMPTS:
                    self._gave_up(booking, str(exc))
                    return
                await asyncio.sleep(self._retry_after)
                continue
            self.undone += 1
            # Out of the snapshot now, not at the next refresh: the room is free.
            await self._snapshot.merge(
                booking.resource_id, booking.start, booking.end, self._others(booking)
            )
            log.info("walk_up_booking_deleted", booking_id=booking.id)
            return

    def _others(self, booking: Booking) -> list[Booking]:
        room = self._snapshot.room(booking.resource_id)
        if room is None:
            return []
        return [
            b
            for b in room.bookings
            if b.id != booking.id and b.start < booking.end and b.end > booking.start
        ]

    def _gave_up(self, booking: Booking, error: str) -> None:
        self.failed += 1
        log.error(
            "walk_up_booking_not_deleted",
            booking_id=booking.id,
            error=error,
            action="delete it in Cobot: its door did not open",
        )
