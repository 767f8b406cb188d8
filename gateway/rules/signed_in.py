"""A sign-in on the captive portal: Cobot already checked the member in.

The portal checks in with the member's login and password (which are never stored, so
there is nothing to queue); the decision only has to hear of it, like any other tap:
the log line, the hooks (the firewall for their devices) and ``Attendance``.
"""

from __future__ import annotations

from gateway.model import CheckIn, Outcome, Tap
from gateway.rules.base import Verdict


class SignedInRule:
    def __init__(self, check_in: CheckIn) -> None:
        self._check_in = check_in

    async def judge(self, tap: Tap) -> Verdict:
        del tap  # the check-in is the answer
        return Verdict(
            Outcome.OPENED_ONLINE, self._check_in.membership, until=self._check_in.valid_until
        )
