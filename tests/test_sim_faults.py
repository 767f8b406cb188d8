"""Fault modes of the simulator: hang, garbage, error, slow; paths, count, commit; the
on_request hook; and a clean stop with requests still hanging."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.sim import SimRequest
from gateway.sim.faults import GARBAGE_BODY
from gateway.sim.seed import ADA, ADMIN_TOKEN, RDM_TOKEN
from tests.sim_helpers import Sim, serve

CHECK_IN = {"token": RDM_TOKEN}


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with serve() as s:
        yield s


async def test_hang_answers_nothing_until_cleared_then_serves(sim: Sim) -> None:
    sim.space.faults.mode = "hang"
    pending = asyncio.create_task(sim.call("POST", "/api/check_ins", json_body=CHECK_IN))
    done, _ = await asyncio.wait({pending}, timeout=0.3)
    assert not done
    assert not sim.space.check_ins  # in front of Cobot: nothing happened yet
    sim.space.faults.mode = None
    answer = await asyncio.wait_for(pending, 5)
    assert answer.status == 201
    assert len(sim.space.check_ins) == 1


async def test_hang_with_commit_does_the_work_then_hangs(sim: Sim) -> None:
    sim.space.faults.set("hang", commit=True)
    pending = asyncio.create_task(sim.call("POST", "/api/check_ins", json_body=CHECK_IN))
    for _ in range(200):
        if sim.space.check_ins:
            break
        await asyncio.sleep(0.01)
    assert len(sim.space.check_ins) == 1  # done at Cobot, the answer is not coming
    assert not pending.done()
    sim.space.faults.clear()
    assert (await asyncio.wait_for(pending, 5)).status == 201


async def test_leaving_run_sim_with_hung_requests_does_not_hang() -> None:
    async with aiohttp.ClientSession() as http:
        async with serve() as sim:
            sim.space.faults.mode = "hang"
            pending = [
                asyncio.create_task(
                    http.post(
                        sim.url + "/api/check_ins",
                        json=CHECK_IN,
                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    )
                )
                for _ in range(3)
            ]
            await asyncio.sleep(0.2)
            space = sim.space
            started = time.monotonic()
        # The server is gone: every hung request is dropped, none answered.
        stopped_in = time.monotonic() - started
        results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 5)
    assert all(isinstance(r, aiohttp.ClientError) for r in results), results
    assert stopped_in < 30  # a bound against hanging, not a speed assertion
    assert [r.status for r in space.requests] == [None, None, None]
    # Dropped by the simulator as it stopped, not left to aiohttp's shutdown timeout.
    assert space.faults.dropped == 3
    assert not space.check_ins


async def test_garbage_is_200_with_a_body_that_is_not_json(sim: Sim) -> None:
    sim.space.faults.mode = "garbage"
    answer = await sim.call("POST", "/api/check_ins", json_body=CHECK_IN)
    assert (answer.status, answer.body, answer.raw) == (200, None, GARBAGE_BODY)
    assert not sim.space.check_ins
    sim.space.faults.set("garbage", commit=True)
    answer = await sim.call("POST", "/api/check_ins", json_body=CHECK_IN)
    assert answer.raw == GARBAGE_BODY
    assert len(sim.space.check_ins) == 1


@pytest.mark.parametrize("status", [500, 503])
async def test_error_answers_the_status(sim: Sim, status: int) -> None:
    sim.space.faults.set("error", status=status)
    answer = await sim.call("GET", "/api/check_in_tokens")
    assert answer.status == status
    assert answer.body is None
    assert sim.space.faults.hits == 1


async def test_slow_answers_after_the_delay(sim: Sim) -> None:
    sim.space.faults.set("slow", delay=0.3)
    started = time.monotonic()
    answer = await sim.call("POST", "/api/check_ins", json_body=CHECK_IN)
    assert answer.status == 201
    assert time.monotonic() - started >= 0.3


async def test_slow_with_commit_is_done_before_the_client_gives_up() -> None:
    async with serve() as sim:
        sim.space.faults.set("slow", delay=60, commit=True)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sim.call("POST", "/api/check_ins", json_body=CHECK_IN), 0.3)
        assert len(sim.space.check_ins) == 1
        pending = asyncio.create_task(sim.call("GET", "/api/check_in_tokens"))
        await asyncio.sleep(0.1)
    # Stopping cut both slow requests short instead of waiting out their 60 s (the
    # first one's client had long given up; its handler was still waiting).
    with pytest.raises(aiohttp.ClientError):
        await pending
    assert sim.space.faults.dropped == 2


async def test_faults_only_on_the_paths_asked(sim: Sim) -> None:
    sim.space.faults.set("error", paths=["/api/check_in_tokens"])
    assert (await sim.call("GET", "/api/check_in_tokens")).status == 503
    assert (await sim.call("GET", f"/api/check_in_tokens/{RDM_TOKEN}")).status == 200
    assert (await sim.call("POST", "/api/check_ins", json_body=CHECK_IN)).status == 201
    # Literal paths work too.
    sim.space.faults.set("error", paths=[f"/api/memberships/{ADA}/check_ins/current"])
    assert (await sim.call("DELETE", f"/api/memberships/{ADA}/check_ins/current")).status == 503


async def test_count_limits_a_fault_to_the_next_requests(sim: Sim) -> None:
    sim.space.faults.set("error", count=2)
    statuses = [(await sim.call("GET", "/api/check_in_tokens")).status for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert sim.space.faults.hits == 2


async def test_a_fault_in_front_answers_even_without_credentials(sim: Sim) -> None:
    sim.space.faults.mode = "error"
    assert (await sim.call("GET", "/api/check_in_tokens", token=None)).status == 503


async def test_on_request_hook_sync_and_async(sim: Sim) -> None:
    seen: list[SimRequest] = []
    sim.space.faults.on_request = seen.append
    await sim.call("GET", "/api/check_in", params={"token": RDM_TOKEN})

    async def slow_hook(request: SimRequest) -> None:
        await asyncio.sleep(0)
        seen.append(request)
        # A hook may change the space before the request is served.
        sim.space.faults.mode = "error"

    sim.space.faults.on_request = slow_hook
    answer = await sim.call("POST", "/api/check_ins", token="unknown", json_body=CHECK_IN)
    assert answer.status == 503
    assert seen == [
        SimRequest("GET", "/api/check_in", "/api/check_in", {"token": RDM_TOKEN}, "admin"),
        SimRequest("POST", "/api/check_ins", "/api/check_ins", {}, None),
    ]


def test_an_unknown_mode_is_refused() -> None:
    from gateway.sim.faults import Faults

    with pytest.raises(ValueError, match="unknown fault mode"):
        Faults().mode = "explode"  # type: ignore[assignment]
