"""The simulator's rate limit: unit tests on an injected clock, then over HTTP."""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sim.ratelimit import WINDOW, SimRateLimiter
from gateway.sim.seed import ADA_TOKEN, ADMIN_TOKEN, RDM_TOKEN, demo_space
from tests.sim_helpers import MORNING, FakeMonotonic, serve

CHECK_INS = "/api/check_ins"
TOKENS = "/api/check_in_tokens"


def test_check_ins_allow_120_and_others_60() -> None:
    clock = FakeMonotonic()
    limiter = SimRateLimiter(clock=clock)
    assert all(limiter.hit("u", CHECK_INS).allowed for _ in range(120))
    assert not limiter.hit("u", CHECK_INS).allowed
    assert all(limiter.hit("u", TOKENS).allowed for _ in range(60))
    refused = limiter.hit("u", TOKENS)
    assert not refused.allowed
    assert refused.limit == 60


def test_buckets_are_per_user_and_template() -> None:
    limiter = SimRateLimiter(clock=FakeMonotonic(), default_limit=2)
    for _ in range(2):
        assert limiter.hit("a", "/x").allowed
        assert limiter.hit("b", "/x").allowed
        assert limiter.hit("a", "/y").allowed
    assert not limiter.hit("a", "/x").allowed
    assert limiter.stats("b", "/x").rejected == 0


def test_the_window_slides() -> None:
    clock = FakeMonotonic()
    limiter = SimRateLimiter(clock=clock, default_limit=3)
    for _ in range(3):
        limiter.hit("u", "/x")
        clock.advance(10)  # sent at 0, 10, 20; now 30
    refused = limiter.hit("u", "/x")
    assert (refused.allowed, refused.retry_after) == (False, 30)  # the first frees at 60
    clock.advance(29.5)
    assert limiter.hit("u", "/x").retry_after == 1  # 0.5 s left, rounded up
    clock.advance(0.5)  # exactly 60 s after the first: its slot is free
    assert limiter.hit("u", "/x").allowed
    assert not limiter.hit("u", "/x").allowed
    clock.advance(10)  # the second leaves
    assert limiter.hit("u", "/x").allowed


def test_refusals_take_no_slot_and_are_counted() -> None:
    clock = FakeMonotonic()
    limiter = SimRateLimiter(clock=clock, default_limit=2)
    limiter.hit("u", "/x")
    limiter.hit("u", "/x")
    for _ in range(50):
        clock.advance(1)
        assert not limiter.hit("u", "/x").allowed
    clock.advance(10)  # 60 s after the first two: had refusals counted, still blocked
    assert limiter.hit("u", "/x").allowed
    stats = limiter.stats("u", "/x")
    assert (stats.accepted, stats.rejected, stats.max_in_window) == (3, 50, 2)
    assert limiter.rejected == 50


def test_max_in_window_sees_the_busiest_60_seconds() -> None:
    clock = FakeMonotonic()
    limiter = SimRateLimiter(clock=clock, default_limit=100)
    for gap in (1, 1, 1, 30, 30, 0.5, 0.5, 0.5):
        limiter.hit("u", "/x")
        clock.advance(gap)
    # Sent at 0, 1, 2, 3, 33, 63, 63.5, 64: the window ending at 33 holds five; the
    # one ending at 64 only four (0..3 have left), which is all that remains now.
    stats = limiter.stats("u", "/x")
    assert (stats.max_in_window, len(stats.sent)) == (5, 4)
    assert limiter.max_in_window == 5


def test_limits_can_be_switched_off_and_changed() -> None:
    limiter = SimRateLimiter(clock=FakeMonotonic(), enabled=False, default_limit=1)
    assert all(limiter.hit("u", "/x").allowed for _ in range(10))
    assert limiter.stats("u", "/x").max_in_window == 10  # still measured
    limiter.enabled = True
    limiter.limits["/x"] = 12  # ten in the window already: two more
    assert limiter.hit("u", "/x").allowed
    assert limiter.hit("u", "/x").allowed
    assert not limiter.hit("u", "/x").allowed
    limiter.limits["/x"] = 0
    assert limiter.hit("u", "/x").retry_after == math.ceil(WINDOW)


def test_an_unseen_bucket_has_empty_stats() -> None:
    stats = SimRateLimiter().stats("nobody", CHECK_INS)
    assert (stats.limit, stats.accepted, stats.max_in_window) == (120, 0, 0)


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0, max_value=40, allow_nan=False), max_size=80),
    limit=st.integers(min_value=1, max_value=6),
)
def test_never_more_than_the_limit_and_retry_after_is_honest(gaps: list[float], limit: int) -> None:
    clock = FakeMonotonic()
    limiter = SimRateLimiter(clock=clock, default_limit=limit)
    accepted: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        decision = limiter.hit("u", "/x")
        if decision.allowed:
            accepted.append(clock.now)
            in_window = [t for t in accepted if t > clock.now - WINDOW + 1e-6]
            assert len(in_window) <= limit
            continue
        # Ask a copy of the limiter: waiting exactly Retry-After finds a free slot, and
        # a second (plus a hair) less would not have.
        at = clock.now
        probe = copy.deepcopy(limiter)
        probe.clock = FakeMonotonic(at + decision.retry_after)
        assert probe.hit("u", "/x").allowed
        if decision.retry_after > 1:
            probe = copy.deepcopy(limiter)
            probe.clock = FakeMonotonic(at + decision.retry_after - 1.001)
            assert not probe.hit("u", "/x").allowed
    assert limiter.stats("u", "/x").max_in_window <= limit


# --- over HTTP ---------------------------------------------------------------------------


async def test_the_121st_check_in_request_is_429_and_the_window_slides() -> None:
    space = demo_space()
    space.set_time(MORNING)
    clock = FakeMonotonic()
    space.monotonic = clock
    async with serve(space) as sim:
        for i in range(120):
            # Previews count: the first 119 are previews, the 120th a real check-in.
            params = {"preview": "true"} if i < 119 else None
            answer = await sim.call(
                "POST", "/api/check_ins", params=params, json_body={"token": RDM_TOKEN}
            )
            assert answer.status in (200, 201), i
            clock.advance(0.25)  # 120 requests over 30 s
        refused = await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
        assert refused.status == 429
        assert refused.headers["Retry-After"] == "30"
        assert refused.body == {"error": "Rate limit exceeded.", "retry_after": 30}
        # GET /api/check_ins is the same template: also refused.
        assert (await sim.call("GET", "/api/check_ins")).status == 429
        # Another user and another template are untouched.
        assert (await sim.call("GET", "/api/check_ins", token=ADA_TOKEN)).status == 200
        assert (await sim.call("GET", "/api/check_in_tokens")).status == 200
        clock.advance(29.9)
        late = await sim.call("POST", "/api/check_ins", json_body={"token": RDM_TOKEN})
        assert (late.status, late.headers["Retry-After"]) == (429, "1")
        clock.advance(0.1)  # 60 s after the first: one slot free
        assert (await sim.call("GET", "/api/check_ins")).status == 200
        assert (await sim.call("GET", "/api/check_ins")).status == 429
        stats = space.rate_limit.stats(ADMIN_TOKEN, "/api/check_ins")
        assert (stats.max_in_window, stats.rejected) == (120, 4)
        assert space.check_in_creations.total() == 1
        statuses = [r.status for r in space.requests]
        assert statuses.count(429) == 4


async def test_other_endpoints_allow_60_per_template_method_ignored() -> None:
    space = demo_space()
    clock = FakeMonotonic()
    space.monotonic = clock
    async with serve(space) as sim:
        for i in range(60):
            if i % 2:
                answer = await sim.call("GET", "/api/check_in_tokens")
            else:
                answer = await sim.call(
                    "POST", "/api/check_in_tokens", json_body={"membership_id": "x", "token": "t"}
                )
            assert answer.status in (200, 422)
        assert (await sim.call("GET", "/api/check_in_tokens")).status == 429
        # /api/check_in_tokens/:token is its own template, with its own window.
        assert (await sim.call("GET", f"/api/check_in_tokens/{RDM_TOKEN}")).status == 200


async def test_forbidden_requests_count_unauthenticated_do_not() -> None:
    space = demo_space()
    space.monotonic = FakeMonotonic()
    space.rate_limit.default_limit = 2
    async with serve(space) as sim:
        for _ in range(2):
            assert (await sim.call("GET", "/api/check_in_tokens", token=ADA_TOKEN)).status == 403
        assert (await sim.call("GET", "/api/check_in_tokens", token=ADA_TOKEN)).status == 429
        for _ in range(3):
            assert (await sim.call("GET", "/api/check_in_tokens", token="nope")).status == 401


@pytest.mark.parametrize("enabled", [False, True])
async def test_the_switch(enabled: bool) -> None:
    space = demo_space()
    space.monotonic = FakeMonotonic()
    space.rate_limit.enabled = enabled
    space.rate_limit.default_limit = 3
    async with serve(space) as sim:
        statuses = [(await sim.call("GET", "/api/check_in_tokens")).status for _ in range(5)]
    assert statuses == ([200] * 3 + [429] * 2 if enabled else [200] * 5)
