"""The server side of Cobot's rate limit, with statistics for tests to assert on.

The General page: "the rate limit for an endpoint is 60 requests per minute per user";
the check-in page gives ``POST /api/check_ins`` 120 rpm. Strict readings taken here:

- "per endpoint" is per path TEMPLATE, method ignored: GET and POST on
  ``/api/check_in_tokens`` share one window, as do all ``/api/memberships/:id/...``
  requests for every id. ``/api/check_ins`` at 120 covers previews too (they are
  requests to that endpoint) and GET ``/api/check_ins`` (same template).
- "per minute" is a sliding 60 s window, not a calendar minute that a client could
  straddle with 2x the limit.
- "per user" is per access token.

A request refused with 429 does NOT take a slot. The 429's Retry-After names the
moment the oldest request leaves the window; if refusals took slots, every retry a
client sent before then would push that moment back, and the header would lie. It also
keeps ``max_in_window`` what tests want: the most requests the server SERVED in any
60 s, which a well-behaved client keeps at or under the limit.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW = 60.0  # seconds
CHECK_INS_TEMPLATE = "/api/check_ins"
# Every booking write (POST, PUT, DELETE) counts here: see gateway/sim/booking_routes.py.
BOOKING_WRITES = "booking writes"
DEFAULT_LIMITS = {CHECK_INS_TEMPLATE: 120, BOOKING_WRITES: 10}
DEFAULT_LIMIT = 60
_EPSILON = 1e-6


@dataclass(slots=True)
class BucketStats:
    """One (user, template) bucket. ``max_in_window`` is exact: the count only grows at
    an accepted request, so its maximum over all windows is seen at one of those."""

    limit: int
    accepted: int = 0
    rejected: int = 0  # 429s sent
    max_in_window: int = 0
    sent: deque[float] = field(default_factory=deque)  # accept times inside the window


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: int = 0  # whole seconds (the header's form), only when refused
    limit: int = 0
    remaining: int = 0


class SimRateLimiter:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        limits: dict[str, int] | None = None,
        default_limit: int = DEFAULT_LIMIT,
        enabled: bool = True,
        window: float = WINDOW,
    ) -> None:
        self.clock = clock
        # Cobot's is 60 s; tests and benchmarks shorten both sides' windows alike.
        self.window = window
        self.limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self.default_limit = default_limit
        # Off: requests are counted (statistics stay useful) but never refused.
        self.enabled = enabled
        self._buckets: dict[tuple[str, str], BucketStats] = {}

    def limit_for(self, template: str) -> int:
        return self.limits.get(template, self.default_limit)

    def hit(self, user: str, template: str) -> Decision:
        """Count one request, or refuse it (without counting it) when over the limit."""
        now = self.clock()
        bucket = self._bucket(user, template)
        bucket.limit = self.limit_for(template)
        # A request occupies its slot for [t, t + WINDOW): at now it still counts when
        # t > now - WINDOW, and is gone at exactly t + WINDOW. The epsilon: in floats
        # (t + 60) - 60 need not equal t, and a client that waits exactly Retry-After
        # must find the slot free.
        while bucket.sent and bucket.sent[0] <= now - self.window + _EPSILON:
            bucket.sent.popleft()
        if self.enabled and len(bucket.sent) >= bucket.limit:
            bucket.rejected += 1
            # The oldest counted request frees its slot at sent[0] + WINDOW; round up
            # so a client honouring the header never arrives early. At least 1 s.
            if bucket.limit <= 0:
                wait = math.ceil(self.window)  # a closed endpoint: nothing will ever free
            else:
                free_at = bucket.sent[len(bucket.sent) - bucket.limit] + self.window
                wait = max(1, math.ceil(free_at - now - _EPSILON))
            return Decision(False, retry_after=wait, limit=bucket.limit)
        bucket.sent.append(now)
        bucket.accepted += 1
        bucket.max_in_window = max(bucket.max_in_window, len(bucket.sent))
        return Decision(True, limit=bucket.limit, remaining=max(0, bucket.limit - len(bucket.sent)))

    def stats(self, user: str, template: str) -> BucketStats:
        """The bucket's statistics (an empty one if it never saw a request)."""
        return self._buckets.get((user, template)) or BucketStats(self.limit_for(template))

    def buckets(self) -> dict[tuple[str, str], BucketStats]:
        return dict(self._buckets)

    @property
    def rejected(self) -> int:
        return sum(b.rejected for b in self._buckets.values())

    @property
    def max_in_window(self) -> int:
        return max((b.max_in_window for b in self._buckets.values()), default=0)

    def reset(self) -> None:
        self._buckets.clear()

    def _bucket(self, user: str, template: str) -> BucketStats:
        key = (user, template)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = BucketStats(self.limit_for(template))
        return bucket
