"""The project's own Cobot client against the simulator: the two must agree."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from gateway.cobot.client import CobotClient
from gateway.cobot.errors import (
    MalformedResponse,
    RateLimited,
    Refused,
    Unauthorized,
    Unavailable,
)
from gateway.cobot.ratelimit import Group, RateLimiter
from gateway.model import Membership, TokenRecord
from gateway.sim.seed import (
    ADA,
    ADMIN_TOKEN,
    GRACE,
    KATHERINE,
    LIMITED_TOKEN,
    MAC_TOKEN,
    NFC_TOKEN,
    PASS_TOKEN,
    RDM_TOKEN,
)
from tests.sim_helpers import MORNING, Sim, serve

LIMITS = {Group.CHECK_INS: 120, Group.DEFAULT: 60}


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with serve() as s:
        yield s


@pytest.fixture
async def client(sim: Sim) -> AsyncIterator[CobotClient]:
    async with CobotClient(sim.url, ADMIN_TOKEN, RateLimiter(LIMITS), timeout=2.0) as c:
        yield c


async def test_preview_then_check_in_then_the_original(sim: Sim, client: CobotClient) -> None:
    preview = await client.check_in(token=PASS_TOKEN, preview=True)
    assert preview.check_in.id is None
    assert preview.check_in.membership == Membership(KATHERINE, "Katherine Johnson")
    assert not sim.space.check_ins
    made = await client.check_in(token=PASS_TOKEN)
    assert made.check_in.id in sim.space.check_ins
    assert made.check_in.valid_from == MORNING
    assert made.check_in.valid_until == datetime(2026, 3, 2, 23, 59, 59, tzinfo=UTC)
    assert made.check_in.time_pass_id == sim.space.member(KATHERINE).used_time_passes[0]
    again = await client.check_in(token=PASS_TOKEN)
    assert again.check_in == made.check_in
    assert sim.space.check_in_creations.total() == 1


async def test_refusals_carry_the_api_words(client: CobotClient) -> None:
    with pytest.raises(Refused) as refused:
        await client.check_in(login="ada@example.com", password="nope")
    assert refused.value.reason == "login: Login or password incorrect."
    assert refused.value.errors == {"login": "Login or password incorrect."}


async def test_registering_a_taken_token_warns(sim: Sim, client: CobotClient) -> None:
    result = await client.check_in(login="ada@example.com", password="ada-demo", token=NFC_TOKEN)
    assert result.check_in.membership is not None
    assert result.check_in.membership.id == ADA
    assert result.warning is not None
    assert "already registered" in result.warning


async def test_status_check_out_and_work_sessions(sim: Sim, client: CobotClient) -> None:
    assert await client.check_in_status(token=RDM_TOKEN) is None
    made = await client.check_in(token=RDM_TOKEN)
    assert await client.check_in_status(token=RDM_TOKEN) == made.check_in
    assert await client.check_in_status(login="ada@example.com") == made.check_in
    sim.space.advance(600)
    out = await client.check_out(ADA)
    assert out is not None
    assert out.valid_until == MORNING + timedelta(seconds=600)
    assert await client.check_out(ADA) is None

    back = MORNING - timedelta(days=1, hours=2)
    session = await client.create_work_session(GRACE, valid_from=back)
    assert session.valid_from == back
    with pytest.raises(Refused) as refused:
        await client.create_work_session(GRACE, valid_from=back + timedelta(hours=3))
    assert "Already checked in for that day." in refused.value.reason
    listed = await client.list_check_ins(GRACE, back - timedelta(hours=1), MORNING)
    assert listed == [session]


async def test_token_calls(sim: Sim, client: CobotClient) -> None:
    tokens = await client.list_tokens()
    assert TokenRecord(MAC_TOKEN, Membership(ADA, "")) not in tokens
    assert TokenRecord(RDM_TOKEN, Membership(ADA, "Ada Lovelace")) in tokens
    assert await client.get_token(MAC_TOKEN) is not None
    made = await client.create_token(ADA, "124d3a8")
    assert made == TokenRecord("124d3a8", Membership(ADA, "Ada Lovelace"))
    with pytest.raises(Refused):
        await client.create_token(GRACE, "124d3a8")
    await client.delete_token("124d3a8")
    assert await client.get_token("124d3a8") is None
    assert "124d3a8" not in sim.space.tokens


async def test_rate_limited_and_unauthorized(sim: Sim) -> None:
    sim.space.rate_limit.limits["/api/check_in_tokens"] = 1
    async with CobotClient(sim.url, ADMIN_TOKEN, RateLimiter(LIMITS)) as client:
        await client.list_tokens()
        with pytest.raises(RateLimited) as limited:
            await client.list_tokens()
        assert 55 <= limited.value.retry_after <= 60
    async with CobotClient(sim.url, LIMITED_TOKEN, RateLimiter(LIMITS)) as client:
        with pytest.raises(Unauthorized) as forbidden:
            await client.list_tokens()
        assert forbidden.value.status == 403
        assert client.auth_failed
    async with CobotClient(sim.url, "wrong", RateLimiter(LIMITS)) as client:
        with pytest.raises(Unauthorized) as unauthorized:
            await client.check_in(token=RDM_TOKEN)
        assert unauthorized.value.status == 401


async def test_faults_as_the_client_sees_them(sim: Sim, client: CobotClient) -> None:
    sim.space.faults.set("error", count=1)
    with pytest.raises(Unavailable) as unavailable:
        await client.check_in(token=RDM_TOKEN)
    assert (unavailable.value.status, unavailable.value.outcome_unknown) == (503, True)
    sim.space.faults.set("garbage", count=1)
    with pytest.raises(MalformedResponse):
        await client.check_in(token=RDM_TOKEN)
    sim.space.faults.set("hang", count=1)
    async with CobotClient(sim.url, ADMIN_TOKEN, RateLimiter(LIMITS), timeout=0.3) as quick:
        with pytest.raises(Unavailable) as hung:
            await quick.check_in(token=RDM_TOKEN)
    assert hung.value.outcome_unknown
    sim.space.faults.clear()
