"""A walk-up booking is the record of a booking door's tap: made while judging (Cobot's
201 or 422 decides the door), so when the door then fails to open it is deleted again
(issue 10 case 1's kind: nobody is billed for a room they could not enter). Over real
HTTP against the simulated Cobot, through the Decider."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from gateway.bookings.undo import WalkUpUndo
from gateway.decide import Decider
from gateway.errors import DoorError
from gateway.model import Direction, Outcome, Tap
from gateway.rules.base import Verdict
from gateway.sim.seed import ADA, RDM_TOKEN
from tests.booking_rig import ROOM, T0, Rig, rig
from tests.harness import RecordingDoor


class DeadRelay(RecordingDoor):
    def __init__(self) -> None:
        super().__init__("room")

    async def open(self) -> None:
        raise DoorError("relay did not click")


class NoDefault:
    async def judge(self, tap: Tap) -> Verdict:
        raise AssertionError("only the room door is tapped")


def _bookings(r: Rig) -> list[object]:
    return [b for b in r.space.rooms.bookings.values() if b.resource_id == ROOM]


async def _walk_up(r: Rig, door: RecordingDoor) -> tuple[Outcome, WalkUpUndo]:
    await r.refresher().refresh_once()
    undo = WalkUpUndo(r.client, r.snapshot, retry_after=0.01)
    rule = r.rule(walk_up_minutes=30)
    rule._on_walk_up = undo.made
    decider = Decider(
        NoDefault(), [], r.attendance, door_rules={"room": rule}, hooks=[undo.decided]
    )
    runner = asyncio.create_task(undo.run())
    try:
        tap = Tap("room", RDM_TOKEN, Direction.IN, T0 + timedelta(seconds=20), time.monotonic())
        decision = await decider.decide(tap, door)
        await asyncio.wait_for(undo.settle(), 10)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await decider.aclose()
    return decision.outcome, undo


async def test_a_walk_up_whose_door_fails_is_deleted(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        outcome, undo = await _walk_up(r, DeadRelay())
        assert outcome is Outcome.DOOR_FAILED
        assert _bookings(r) == []  # booked while judging, deleted once the door failed
        assert (undo.undone, undo.failed) == (1, 0)
        room = r.snapshot.room(ROOM)
        assert room is not None and room.current(T0 + timedelta(minutes=2)) == []


async def test_a_walk_up_whose_door_opens_stands(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        door = RecordingDoor("room")
        outcome, undo = await _walk_up(r, door)
        assert outcome is Outcome.OPENED_WALK_UP and door.opened == 1
        (made,) = _bookings(r)
        assert made.membership_id == ADA  # type: ignore[attr-defined]
        assert (undo.undone, undo.failed) == (0, 0)


async def test_a_booking_that_cannot_be_deleted_is_logged_for_the_staff(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    async with rig(tmp_path) as r:
        r.space.faults.set("error", paths=["/api/bookings/:id"])
        with capture_logs() as logs:
            outcome, undo = await _walk_up(r, DeadRelay())
        r.space.faults.set(None)
        assert outcome is Outcome.DOOR_FAILED
        assert (undo.undone, undo.failed) == (0, 1)
        assert len(_bookings(r)) == 1
        assert "walk_up_booking_not_deleted" in [e["event"] for e in logs]
