"""MOCO's requests are counted like Cobot's (issue 17: "API requests by endpoint group and
status"): by path template, never by a presence or user id, in the ``moco`` group."""

from __future__ import annotations

from datetime import date

from gateway.cobot.ratelimit import Group, Priority, RateLimiter
from gateway.moco.client import MocoClient
from gateway.moco.keys import MocoKeys
from gateway.moco_sim import ACCOUNT_KEY, demo_moco, run_moco_sim

USER = 933590696


async def test_moco_requests_are_observed_by_template_and_status() -> None:
    seen: list[tuple[str, str, str]] = []
    space = demo_moco()
    async with run_moco_sim(space) as url:
        client = MocoClient(
            url,
            MocoKeys(ACCOUNT_KEY, {}),
            RateLimiter({Group.MOCO: 100}),
            observe=lambda path, group, code, seconds: seen.append((path, group, code)),
        )
        async with client:
            presence = await client.touch(USER, priority=Priority.LIVE)
            await client.presences(USER, date.today(), date.today(), priority=Priority.LIVE)
            await client.delete(USER, presence.id, priority=Priority.LIVE)
    assert seen == [
        ("/api/v1/users/presences/touch", "moco", "200"),
        ("/api/v1/users/presences", "moco", "200"),
        ("/api/v1/users/presences/:id", "moco", "204"),
    ]
    assert not any(str(presence.id) in path or str(USER) in path for path, _, _ in seen)
