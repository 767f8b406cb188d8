"""The door-rule seam and the verdict it returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gateway.model import Membership, Outcome, RecordKind, Signal, Tap

ADMITTING = frozenset(
    {
        Outcome.OPENED_CACHED,
        Outcome.OPENED_ONLINE,
        Outcome.OPENED_OFFLINE,
        Outcome.OPENED_MEMBER,
        Outcome.CHECKED_OUT,
        Outcome.CHECK_OUT_QUEUED,
        Outcome.STAFF,
        Outcome.OPENED_BOOKING,
        Outcome.OPENED_WALK_UP,
        Outcome.WALK_UP_ENDED,
    }
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A rule's answer for one tap.

    ``record`` is what the record backends store if the door opens (None: nothing);
    ``until`` is when the member's check-in ends, told to ``Attendance`` once the record
    is stored or delivered; ``live`` says the API is answering, so delivery starts now.
    """

    outcome: Outcome
    member: Membership | None
    reason: str | None = None
    record: RecordKind | None = None
    until: datetime | None = None
    live: bool = True
    preview_ms: float | None = None

    @property
    def admits(self) -> bool:
        return self.outcome in ADMITTING

    @property
    def signal(self) -> Signal:
        if not self.admits:
            return Signal.REFUSED
        return Signal.OFFLINE if self.outcome is Outcome.OPENED_OFFLINE else Signal.GRANTED


class DoorRule(Protocol):
    """Who may open one door now. ``judge`` never raises for an API or storage failure
    (it decides locally instead) and returns within the rule's own deadline."""

    async def judge(self, tap: Tap) -> Verdict: ...
