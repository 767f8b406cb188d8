"""A body larger than one network chunk is read whole (a long token or booking list was
cut after the first chunk and read as "not JSON")."""

from __future__ import annotations

from gateway.cobot.client import CobotClient
from gateway.cobot.ratelimit import Group, RateLimiter
from gateway.sim import ADMIN_TOKEN, demo_space, run_sim
from gateway.sim.seed import ADA


async def test_a_token_list_of_twenty_thousand_is_read_whole() -> None:
    space = demo_space()
    for i in range(20_000):
        space.register_token(f"CARD{i:08d}", ADA)
    async with (
        run_sim(space) as url,
        CobotClient(url, ADMIN_TOKEN, RateLimiter({Group.DEFAULT: 60})) as client,
    ):
        records = await client.list_tokens()
    assert len(records) == len(space.tokens) == 20_006
    assert records[-1].token == "CARD00019999"
