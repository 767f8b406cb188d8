"""The simulated MOCO is strict to moco-presences.txt (over real HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from gateway.moco_sim import ACCOUNT_KEY, MocoSpace, demo_moco, run_moco_sim

USER = 933590696
OWN = 933590697
OWN_KEY = "moco-user-key-933590697"
BASE = "/api/v1/users/presences"


@pytest.fixture
async def sim() -> AsyncIterator[tuple[MocoSpace, aiohttp.ClientSession, str]]:
    space = demo_moco()
    space.clock.set_time(datetime(2026, 11, 30, 9, 30, 5, tzinfo=UTC).astimezone(space.clock.zone))
    async with run_moco_sim(space) as url, aiohttp.ClientSession() as http:
        yield space, http, url


def auth(key: str = ACCOUNT_KEY, user: int | None = USER) -> dict[str, str]:
    headers = {"Authorization": f"Token token={key}"}
    if user is not None:
        headers["X-IMPERSONATE-USER-ID"] = str(user)
    return headers


async def call(
    http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], **kw: object
) -> tuple[int, object]:
    async with http.request(method, url, headers=headers, **kw) as resp:  # type: ignore[arg-type]
        body = await resp.json() if resp.content_type == "application/json" else None
        return resp.status, body


async def test_touch_opens_then_closes_and_the_same_minute_is_discarded(sim) -> None:  # type: ignore[no-untyped-def]
    space, http, url = sim
    day = space.clock.now().astimezone(space.clock.zone).date()
    status, body = await call(http, "POST", url + BASE + "/touch", auth())
    assert status == 200 and body["to"] is None and body["user"]["id"] == USER  # type: ignore[index]
    status, body = await call(http, "POST", url + BASE + "/touch", auth())
    assert status == 200 and space.intervals(USER, day) == []  # within the minute: discarded
    assert space.discarded == 1
    await call(http, "POST", url + BASE + "/touch", auth())
    space.clock.advance(120)
    status, body = await call(http, "POST", url + BASE + "/touch", auth())
    assert space.intervals(USER, day) == [(body["from"], body["to"])]  # type: ignore[index]


async def test_touch_conflicting_with_a_presence_is_423(sim) -> None:  # type: ignore[no-untyped-def]
    space, http, url = sim
    day = space.clock.now().astimezone(space.clock.zone).date()
    space.add_presence(USER, day, "09:00", "10:00")
    status, _ = await call(http, "POST", url + BASE + "/touch", auth())
    assert status == 423


async def test_keys_scheme_and_impersonation(sim) -> None:  # type: ignore[no-untyped-def]
    _, http, url = sim
    q = {"from": "2026-11-30", "to": "2026-11-30"}
    assert (await call(http, "GET", url + BASE, {"Authorization": "Bearer x"}, params=q))[0] == 401
    assert (await call(http, "GET", url + BASE, auth("wrong", None), params=q))[0] == 401
    # A user's own key may not impersonate; the account key may not act for a stranger.
    assert (await call(http, "GET", url + BASE, auth(OWN_KEY, USER), params=q))[0] == 403
    assert (await call(http, "GET", url + BASE, auth(ACCOUNT_KEY, 42), params=q))[0] == 403
    status, body = await call(http, "POST", url + BASE + "/touch", auth(OWN_KEY, None))
    assert status == 200 and body["user"]["id"] == OWN  # type: ignore[index]


async def test_list_create_update_delete_as_documented(sim) -> None:  # type: ignore[no-untyped-def]
    space, http, url = sim
    # from and to have to be provided together
    status, _ = await call(http, "GET", url + BASE, auth(), params={"from": "2026-11-30"})
    assert status == 422
    body = {"date": "2026-11-29", "from": "08:00", "to": "10:00"}
    status, created = await call(http, "POST", url + BASE, auth(), json=body)
    assert status == 200 and created["from"] == "08:00"  # type: ignore[index]
    pid = created["id"]  # type: ignore[index]
    # Strict readings: overlaps and ends before starts are refused; JSON is required.
    assert (await call(http, "POST", url + BASE, auth(), json=body))[0] == 422
    bad = {"date": "2026-11-29", "from": "12:00", "to": "11:00"}
    assert (await call(http, "POST", url + BASE, auth(), json=bad))[0] == 422
    assert (await call(http, "POST", url + BASE, auth(), data="date=x"))[0] == 415
    assert (await call(http, "POST", url + BASE, auth(), json={"from": "08:00"}))[0] == 422
    status, updated = await call(http, "PUT", f"{url}{BASE}/{pid}", auth(), json={"to": "14:00"})
    assert status == 200 and updated["to"] == "14:00"  # type: ignore[index]
    params = {"from": "2026-11-29", "to": "2026-11-29", "user_id": str(USER)}
    status, listed = await call(http, "GET", url + BASE, auth(), params=params)
    assert [(p["from"], p["to"]) for p in listed] == [("08:00", "14:00")]  # type: ignore[union-attr]
    # Another user's presence is not theirs to change.
    assert (
        await call(http, "PUT", f"{url}{BASE}/{pid}", auth(OWN_KEY, None), json={"to": "15:00"})
    )[0] == 404
    assert (await call(http, "DELETE", f"{url}{BASE}/{pid}", auth()))[0] == 204
    assert space.presences == {}


async def test_429_with_retry_after_beyond_the_limit(sim) -> None:  # type: ignore[no-untyped-def]
    space, http, url = sim
    space.rate_limit.default_limit = 2
    q = {"from": "2026-11-30", "to": "2026-11-30"}
    statuses = [(await call(http, "GET", url + BASE, auth(), params=q))[0] for _ in range(3)]
    assert statuses == [200, 200, 429]
    async with http.get(url + BASE, headers=auth(), params=q) as resp:
        assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
