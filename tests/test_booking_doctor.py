"""``doctor`` on booking doors: the resource behind each (its name), the scopes."""

from __future__ import annotations

from pathlib import Path

from gateway.sim import ADMIN_TOKEN, Role, Scope, demo_space, run_sim
from gateway.sim.seed import MEETING_ROOM
from tests.test_doctor import doctor, system_for, write_config

ROOM_DOOR = """
[[doors]]
type = "command"
name = "{name}"
command = ["true"]
access = "booking"
resource_id = "{rid}"
walk_up_minutes = {walk_up}
"""


def config(tmp_path: Path, url: str, *rooms: tuple[str, str, int]) -> Path:
    path = write_config(tmp_path, url)
    with path.open("a") as f:
        for name, rid, walk_up in rooms:
            f.write(ROOM_DOOR.format(name=name, rid=rid, walk_up=walk_up))
    return path


async def test_rooms_named_wrong_id_fixed_and_write_scope_checked(tmp_path: Path) -> None:
    space = demo_space()
    async with run_sim(space) as url:
        cfg = config(tmp_path, url, ("room-1", MEETING_ROOM, 30), ("room-2", "404404", 0))
        code, text, rows = await doctor(cfg, system_for(tmp_path), ADMIN_TOKEN)
    assert code == 1, text
    assert rows["door room-1 room"].startswith("ok Meeting Room (resource 12355): 1 booking(s)")
    assert rows["door room-2 room"].startswith("FIX Cobot has no resource '404404'")
    assert rows["scope write_bookings"] == "ok granted: walk-up booking"
    assert not space.rooms.writes  # the probe wrote nothing


async def test_missing_booking_scopes_are_named(tmp_path: Path) -> None:
    space = demo_space()
    space.add_access_token(
        "no-bookings",
        role=Role.ADMIN,
        scopes=[Scope.CHECKIN, Scope.CHECKIN_TOKENS, Scope.READ_RESOURCES],
    )
    async with run_sim(space) as url:
        cfg = config(tmp_path, url, ("room-1", MEETING_ROOM, 0))
        code, text, rows = await doctor(cfg, system_for(tmp_path), "no-bookings")
    assert code == 1, text
    assert rows["door room-1 room"] == "FIX the token lacks the scope read_bookings"
    assert "read_resources and read_bookings" in " ".join(text.split())
