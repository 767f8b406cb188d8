"""The seam every door implements: open it, and show the person what happened."""

from __future__ import annotations

import enum
from typing import Protocol

from gateway.model import Signal


class EnrolSignal(enum.StrEnum):
    """A reader's enrolment mode, shown by its door (gateway/admin/enrol_feedback.py).

    ``WAITING`` starts a mode that lasts until ``CAPTURED`` or ``ENDED`` (a GPIO door
    blinks until then, at most ``feedback.MODE_LIMIT`` seconds; a feedback command is
    told each change once). Other signals in between are shown, then waiting resumes.
    """

    WAITING = "enrol-waiting"  # the reader waits for a new card
    CAPTURED = "enrol-captured"  # it read one: the card is on the admin page
    ENDED = "enrol-ended"  # no card in time, enrolment cancelled, or Cobot refused the card


DoorSignal = Signal | EnrolSignal


class Door(Protocol):
    @property
    def name(self) -> str: ...

    async def open(self) -> None:
        """Unlock for one pulse; raise ``DoorError`` when the door could not be driven."""

    async def signal(self, signal: DoorSignal) -> None:
        """LEDs/buzzer; doors without feedback hardware do nothing. Never raises."""

    async def aclose(self) -> None:
        """Release the hardware (lines, processes); idempotent."""
