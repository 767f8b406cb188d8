"""``access = "check-in"`` (the default): Cobot's preview gates the door.

Online, ``POST /api/check_ins?preview=true`` (cobot-check-ins.txt) answers: 200 opens the
door and records a check-in, 422 keeps it shut with the API's reason. A member still
checked in today re-enters with no API call. When the API cannot answer within the
deadline, or the breaker knows it is unreachable, the decision is local: ``known-tokens``
lets cached tokens in (and queues their check-in), ``deny`` keeps everyone out; a token
Cobot refused earlier today stays out either way. An exit reader (``direction = "out"``)
checks the member out.
"""

from __future__ import annotations

import time

from gateway.attendance import Attendance, end_of_local_day
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
from gateway.model import Direction, Membership, OfflinePolicy, Outcome, RecordKind, Tap
from gateway.rules.base import Verdict

DECISION_DEADLINE = 1.5  # seconds a person waits for the API before we decide locally


class CheckInRule:
    def __init__(
        self,
        cache: TokenCache,
        attendance: Attendance,
        client: CobotClient,
        breaker: Breaker,
        *,
        policy: OfflinePolicy,
        deadline: float = DECISION_DEADLINE,
    ) -> None:
        self._cache = cache
        self._attendance = attendance
        self._client = client
        self._breaker = breaker
        self._policy = policy
        self._deadline = deadline

    async def judge(self, tap: Tap) -> Verdict:
        if tap.direction is Direction.OUT:
            return await self._check_out(tap)
        return await self._check_in(tap)

    async def _check_in(self, tap: Tap) -> Verdict:
        member = self._cache.lookup(tap.token)
        if member is not None and self._attendance.until(member.id, tap.at):
            return Verdict(Outcome.OPENED_CACHED, member)
        if self._breaker.is_open:
            return self._offline(tap, member, self._breaker.last_error or "API unavailable")
        started = time.monotonic()
        try:
            result = await self._client.check_in(
                token=tap.token, preview=True, priority=Priority.LIVE, deadline=self._deadline
            )
        except Refused as exc:
            self._attendance.refused(tap.token, exc.reason, tap.at)
            return Verdict(
                Outcome.REFUSED,
                member,
                exc.reason,
                preview_ms=(time.monotonic() - started) * 1000,
            )
        except Unavailable as exc:
            # Only an API out of reach opens the breaker; an answer we cannot use is not
            # an outage (the next tap asks again).
            self._breaker.record_failure(str(exc))
            return self._offline(tap, member, str(exc))
        except (RateLimited, NoSlot, Unauthorized, MalformedResponse) as exc:
            # The API is up but will not (or cannot) answer us now: decide here.
            return self._offline(tap, member, str(exc))
        self._breaker.record_success()
        self._attendance.accepted(tap.token)
        return Verdict(
            Outcome.OPENED_ONLINE,
            result.check_in.membership or member,
            record=RecordKind.CHECK_IN,
            until=result.check_in.valid_until,
            preview_ms=(time.monotonic() - started) * 1000,
        )

    def _offline(self, tap: Tap, member: Membership | None, why: str) -> Verdict:
        if member is None:
            return Verdict(Outcome.DENIED_OFFLINE, None, f"token not in cache ({why})")
        if self._policy is OfflinePolicy.DENY:
            return Verdict(Outcome.DENIED_OFFLINE, member, f"offline policy is deny ({why})")
        refusal = self._attendance.refusal(tap.token, tap.at)
        if refusal is not None:
            return Verdict(
                Outcome.DENIED_OFFLINE, member, f"Cobot refused earlier today: {refusal}"
            )
        return Verdict(
            Outcome.OPENED_OFFLINE,
            member,
            why,
            record=RecordKind.CHECK_IN,
            until=end_of_local_day(tap.at),
            live=False,
        )

    async def _check_out(self, tap: Tap) -> Verdict:
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
            return Verdict(Outcome.UNKNOWN_TOKEN, None, "token not known")
        live = not self._breaker.is_open
        return Verdict(
            Outcome.CHECKED_OUT if live else Outcome.CHECK_OUT_QUEUED,
            member,
            record=RecordKind.CHECK_OUT,
            live=live,
        )
