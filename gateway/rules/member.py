"""``access = "member"``: any token the cache knows opens the door; nothing is recorded.

For an inner street door that only needs a valid member: no API call, no check-in, the
same answer online and offline.
"""

from __future__ import annotations

from gateway.cache import TokenCache
from gateway.model import Outcome, Tap
from gateway.rules.base import Verdict


class MemberRule:
    def __init__(self, cache: TokenCache) -> None:
        self._cache = cache

    async def judge(self, tap: Tap) -> Verdict:
        member = self._cache.lookup(tap.token)
        if member is None:
            return Verdict(Outcome.UNKNOWN_TOKEN, None, "token not known")
        return Verdict(Outcome.OPENED_MEMBER, member)
