"""The simulated resources and bookings endpoints answer as the API pages say (raw HTTP,
not our client: the simulator is the client's yardstick)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from gateway.sim.model import Role, Scope
from gateway.sim.seed import ADA, ADA_TOKEN, ADMIN_TOKEN, GRACE, LIMITED_TOKEN
from tests.booking_rig import ROOM, T0, fresh_space
from tests.sim_helpers import Sim, serve

H = timedelta(hours=1)
M = timedelta(minutes=1)
FROM = "2026-03-02 08:00 +0000"
TO = "2026-03-02 18:00 +0000"


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async with serve(fresh_space()) as s:
        yield s


def q(start: str = FROM, end: str = TO) -> dict[str, str]:
    return {"from": start, "to": end}


async def test_resource_shapes_and_404(sim: Sim) -> None:
    one = await sim.call("GET", f"/api/resources/{ROOM}")
    assert one.status == 200
    assert one.body["name"] == "Room 7" and one.body["can_book"] is True
    assert one.body["units"] == 1 and one.body["booking_times"] == []
    assert one.body["booking_url"].endswith(f"/api/resources/{ROOM}/bookings")
    listed = await sim.call("GET", "/api/resources", params={"ids": ROOM})
    assert [r["id"] for r in listed.body] == [ROOM]
    assert (await sim.call("GET", "/api/resources/nope")).status == 404


async def test_overlap_query_with_both_time_formats_strict(sim: Sim) -> None:
    rooms = sim.space.rooms
    inside = rooms.add_booking(ROOM, T0 + H, T0 + 2 * H, membership_id=ADA)
    rooms.add_booking(ROOM, T0 - 2 * H, T0 - H, membership_id=ADA)  # ends 08:00: touches
    blocked = rooms.add_booking(ROOM, T0 + 3 * H, T0 + 4 * H)
    got = await sim.call("GET", f"/api/resources/{ROOM}/bookings", params=q())
    assert got.status == 200
    assert [b["id"] for b in got.body] == [inside.id, blocked.id]
    first = got.body[0]
    assert first["from"] == "2026/03/02 10:00:00 +0000"  # the response format
    assert first["membership"] == {"id": ADA, "name": "Ada Lovelace"}
    assert first["resource"] == {"name": "Room 7", "id": ROOM}
    assert "membership" not in got.body[1]  # an admin's block
    for bad in ("2026/03/02 08:00:00 +0000", "2026-03-02 08:00", "2026-03-2 08:00 +0000"):
        answer = await sim.call("GET", f"/api/resources/{ROOM}/bookings", params=q(bad))
        assert answer.status == 400, bad
    assert (await sim.call("GET", f"/api/resources/{ROOM}/bookings")).status == 400


async def test_members_see_only_their_own_membership(sim: Sim) -> None:
    sim.space.rooms.add_booking(ROOM, T0 + H, T0 + 2 * H, membership_id=GRACE)
    sim.space.rooms.add_booking(ROOM, T0 + 3 * H, T0 + 4 * H, membership_id=ADA)
    got = await sim.call("GET", f"/api/resources/{ROOM}/bookings", params=q(), token=ADA_TOKEN)
    assert got.status == 200
    assert "membership" not in got.body[0]
    assert got.body[1]["membership"]["id"] == ADA


async def test_create_201_overlap_422_validation_for_admin(sim: Sim) -> None:
    body = {"from": "2026-03-02 10:00 +0000", "to": "2026-03-02 11:00 +0000", "units": 1}
    made = await sim.call(
        "POST", f"/api/resources/{ROOM}/bookings", json_body={**body, "membership_id": ADA}
    )
    assert made.status == 201
    assert made.body["from"] == "2026/03/02 10:00:00 +0000"
    assert made.body["membership"]["id"] == ADA and made.body["can_change"] is True
    again = await sim.call("POST", f"/api/resources/{ROOM}/bookings", json_body=body)
    assert again.status == 422 and "already booked" in again.body["errors"]["base"]
    past = {"from": "2026-03-02 08:59 +0000", "to": "2026-03-02 09:30 +0000"}
    admin = await sim.call("POST", f"/api/resources/{ROOM}/bookings", json_body=past)
    assert admin.status == 201  # admins may book any time...
    checked = {**past, "from": "2026-03-02 08:58 +0000", "validate_times_for_admin": True}
    refused = await sim.call("POST", f"/api/resources/{ROOM}/bookings", json_body=checked)
    assert refused.status == 422 and refused.body["errors"] == {"from": "can't be in the past"}
    bad = {"from": "2026/03/02 12:00:00 +0000", "to": "2026-03-02 13:00 +0000"}
    assert (await sim.call("POST", f"/api/resources/{ROOM}/bookings", json_body=bad)).status == 422


async def test_booking_times_and_durations_apply_to_members(sim: Sim) -> None:
    room = sim.space.rooms.resources[ROOM]
    room.booking_times = [("10:00", "17:00", [1, 2])]
    room.max_booking_duration = 60
    path = f"/api/resources/{ROOM}/bookings"
    early = {"from": "2026-03-02 09:30 +0000", "to": "2026-03-02 10:30 +0000"}
    answer = await sim.call("POST", path, json_body=early, token=ADA_TOKEN)
    assert answer.status == 422 and "Mon, Tue 10:00-17:00" in answer.body["errors"]["base"]
    long = {"from": "2026-03-02 10:00 +0000", "to": "2026-03-02 12:00 +0000"}
    answer = await sim.call("POST", path, json_body=long, token=ADA_TOKEN)
    assert answer.status == 422 and "at most 60 minutes" in answer.body["errors"]["base"]
    ok = {"from": "2026-03-02 10:00 +0000", "to": "2026-03-02 11:00 +0000"}
    answer = await sim.call("POST", path, json_body={**ok, "membership_id": GRACE}, token=ADA_TOKEN)
    assert answer.status == 403  # a member books only for themselves
    answer = await sim.call("POST", path, json_body=ok, token=ADA_TOKEN)
    assert answer.status == 201 and answer.body["membership"]["id"] == ADA
    room.members_can_book = False
    assert (await sim.call("GET", f"/api/resources/{ROOM}", token=ADA_TOKEN)).body[
        "can_book"
    ] is False
    later = {"from": "2026-03-02 12:00 +0000", "to": "2026-03-02 13:00 +0000"}
    assert (await sim.call("POST", path, json_body=later, token=ADA_TOKEN)).status == 403


async def test_update_delete_and_event_bookings_409(sim: Sim) -> None:
    rooms = sim.space.rooms
    mine = rooms.add_booking(ROOM, T0 + H, T0 + 2 * H, membership_id=ADA)
    event = rooms.add_booking(ROOM, T0 + 3 * H, T0 + 4 * H, membership_id=GRACE, event_id="e1")
    put = await sim.call(
        "PUT", f"/api/bookings/{mine.id}", json_body={"to": "2026-03-02 10:30 +0000"}
    )
    assert put.status == 200 and put.body["to"] == "2026/03/02 10:30:00 +0000"
    assert put.body["from"] == "2026/03/02 10:00:00 +0000"  # unchanged
    conflict = await sim.call("PUT", f"/api/bookings/{event.id}", json_body={"title": "x"})
    assert conflict.status == 409
    assert (await sim.call("DELETE", f"/api/bookings/{event.id}")).status == 409
    got = await sim.call("GET", f"/api/bookings/{event.id}")
    assert got.body["event"] == {"id": "e1"} and got.body["can_change"] is False
    assert (await sim.call("DELETE", f"/api/bookings/{mine.id}")).status == 204
    assert (await sim.call("GET", f"/api/bookings/{mine.id}")).status == 404
    # members change only their own future bookings
    sim.space.set_time(T0 + 3.5 * H)
    running = rooms.add_booking(ROOM, T0 + 3 * H, T0 + 5 * H, membership_id=ADA)
    answer = await sim.call("DELETE", f"/api/bookings/{running.id}", token=ADA_TOKEN)
    assert answer.status == 403


async def test_scopes(sim: Sim) -> None:
    assert (await sim.call("GET", f"/api/resources/{ROOM}", token=LIMITED_TOKEN)).status == 403
    sim.space.add_access_token(
        "reader-only", role=Role.ADMIN, scopes=[Scope.READ_RESOURCES, Scope.READ_BOOKINGS]
    )
    got = await sim.call("GET", f"/api/resources/{ROOM}/bookings", params=q(), token="reader-only")
    assert got.status == 200
    body = {"from": "2026-03-02 10:00 +0000", "to": "2026-03-02 11:00 +0000"}
    denied = await sim.call(
        "POST", f"/api/resources/{ROOM}/bookings", json_body=body, token="reader-only"
    )
    assert denied.status == 403 and denied.body["scope"] == "write_bookings"


async def test_ten_booking_writes_per_minute(sim: Sim) -> None:
    sim.space.rooms.resources[ROOM].units = 100
    body = {"from": "2026-03-02 10:00 +0000", "to": "2026-03-02 11:00 +0000"}
    statuses = [
        (await sim.call("POST", f"/api/resources/{ROOM}/bookings", json_body=body)).status
        for _ in range(11)
    ]
    assert statuses == [201] * 10 + [429]
    # a PUT is a write too; reads are not limited by it
    some = next(iter(sim.space.rooms.bookings))
    put = await sim.call("PUT", f"/api/bookings/{some}", json_body={"title": "x"})
    assert put.status == 429 and int(put.headers["Retry-After"]) >= 1
    assert (await sim.call("GET", f"/api/resources/{ROOM}/bookings", params=q())).status == 200
    assert sim.space.rate_limit.stats(ADMIN_TOKEN, "booking writes").rejected == 2
