"""A reader that records to MOCO: staff cards (``[[moco.users]]``) are clocked.

On a reader recording only to MOCO, a mapped card is admitted (its door, if it has one,
opens) and the tap is a ``touch``; any other card is refused. On a reader recording to
Cobot too, the door's own rule (``fallback``) judges first: a member is checked in (and,
if also staff, clocked by the same tap); a staff card that rule does not admit is still
let in as staff and only clocked. No API call: the mapping is local config.
"""

from __future__ import annotations

from gateway.moco.staff import StaffBook
from gateway.model import Outcome, RecordKind, Tap
from gateway.rules.base import DoorRule, Verdict


class StaffRule:
    def __init__(self, staff: StaffBook, fallback: DoorRule | None = None) -> None:
        self._staff = staff
        self._fallback = fallback

    async def judge(self, tap: Tap) -> Verdict:
        staff = self._staff.user_for(tap.token) is not None
        if self._fallback is not None:
            verdict = await self._fallback.judge(tap)
            if verdict.admits or not staff:
                return verdict
        if not staff:
            return Verdict(Outcome.UNKNOWN_TOKEN, None, "not a staff card ([[moco.users]])")
        return Verdict(Outcome.STAFF, None, record=RecordKind.TOUCH)
