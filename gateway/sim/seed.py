"""Demo data for ``make demo``, tests and benchmarks. NOT secrets: everything here is
printed by ``python -m gateway.sim`` and meant to be typed at a demo reader.

Members (login is the e-mail, password is the first name lower-cased + "-demo"):

- Ada Lovelace ``ada@example.com`` / ``ada-demo``: unlimited, token ``0A1B2C3D4E``
  (an RDM6300 card), id ``ADA`` = the docs' own example id.
- Grace Hopper ``grace@example.com`` / ``grace-demo``: unlimited, token
  ``04A1B2C3D4E5F6`` (a 7-byte NFC UID).
- Katherine Johnson ``katherine@example.com`` / ``katherine-demo``: time passes, 3
  left, token ``0A00000001``.
- Alan Turing ``alan@example.com`` / ``alan-demo``: time passes, none left (422),
  token ``0A00000002``.
- Hedy Lamarr ``hedy@example.com`` / ``hedy-demo``: membership not confirmed (422),
  token ``0A00000003``.
- Margaret Hamilton ``margaret@example.com`` / ``margaret-demo``: unlimited, MAC token
  ``aa:bb:cc:dd:ee:01`` (Wi-Fi presence / captive portal).

Accounts without a membership (checked in, not tracked): guest ``guest@example.com`` /
``guest-demo``; admin ``admin@example.com`` / ``admin-demo``.

Rooms: "Meeting Room" (resource ``12355``, the docs' id) is booked by Ada from 15
minutes before the simulator started for three hours (booking ``20723075``); "Phone
Booth" (``12356``) is free, bookable for up to 60 minutes (walk-up).

Access tokens: ``ADMIN_TOKEN`` (admin, every scope), ``ADA_TOKEN`` (Ada's own, every
scope: may only check herself in), ``LIMITED_TOKEN`` (admin with scope ``checkin``
only: 403 on the token and work-session endpoints).
"""

from __future__ import annotations

from datetime import timedelta

from gateway.sim.model import AccountKind, Plan, Role, Scope
from gateway.sim.space import SimSpace

ADMIN_TOKEN = "sim-admin-token-0123456789abcdef"
ADA_TOKEN = "sim-member-token-ada-0123456789"
LIMITED_TOKEN = "sim-checkin-only-token-01234567"

ADA = "fdc00612c086d003fab5d99539153f68"  # the docs' own example membership id
GRACE = "0c4f75fa14924423810d6f12aeb56fbb"  # the docs' other example id
KATHERINE = "6b1d2c9a0e7f4a3b8c5d1e2f3a4b5c6d"
ALAN = "a9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4"
HEDY = "1234abcd5678ef901234abcd5678ef90"
MARGARET = "c0ffee00c0ffee00c0ffee00c0ffee00"
MEETING_ROOM = "12355"
PHONE_BOOTH = "12356"
ADA_BOOKING = "20723075"

RDM_TOKEN = "0A1B2C3D4E"
NFC_TOKEN = "04A1B2C3D4E5F6"
MAC_TOKEN = "aa:bb:cc:dd:ee:01"
PASS_TOKEN = "0A00000001"
NO_PASS_TOKEN = "0A00000002"
UNCONFIRMED_TOKEN = "0A00000003"


def demo_space(*, timezone: str = "UTC", seed: int = 0) -> SimSpace:
    space = SimSpace(timezone=timezone, seed=seed)
    space.add_member("Ada Lovelace", "ada@example.com", "ada-demo", id=ADA, tokens=[RDM_TOKEN])
    space.add_member(
        "Grace Hopper", "grace@example.com", "grace-demo", id=GRACE, tokens=[NFC_TOKEN]
    )
    space.add_member(
        "Katherine Johnson",
        "katherine@example.com",
        "katherine-demo",
        id=KATHERINE,
        plan=Plan.TIME_PASSES,
        time_passes=3,
        tokens=[PASS_TOKEN],
    )
    space.add_member(
        "Alan Turing",
        "alan@example.com",
        "alan-demo",
        id=ALAN,
        plan=Plan.TIME_PASSES,
        time_passes=0,
        tokens=[NO_PASS_TOKEN],
    )
    space.add_member(
        "Hedy Lamarr",
        "hedy@example.com",
        "hedy-demo",
        id=HEDY,
        confirmed=False,
        tokens=[UNCONFIRMED_TOKEN],
    )
    space.add_member(
        "Margaret Hamilton",
        "margaret@example.com",
        "margaret-demo",
        id=MARGARET,
        tokens=[MAC_TOKEN],
    )
    add_demo_rooms(space)
    space.add_account("guest@example.com", "guest-demo", kind=AccountKind.GUEST, name="Guest")
    space.add_account("admin@example.com", "admin-demo", kind=AccountKind.ADMIN, name="Admin")
    space.add_access_token(ADMIN_TOKEN, role=Role.ADMIN, user="admin")
    space.add_access_token(ADA_TOKEN, role=Role.MEMBER, membership_id=ADA, user="ada")
    space.add_access_token(LIMITED_TOKEN, role=Role.ADMIN, scopes=[Scope.CHECKIN], user="limited")
    return space


def add_demo_rooms(space: SimSpace) -> None:
    space.rooms.add_resource("Meeting Room", id=MEETING_ROOM, capacity=10)
    space.rooms.add_resource(
        "Phone Booth", id=PHONE_BOOTH, max_booking_duration=60, price_per_hour=4.0
    )
    start = space.now().replace(second=0, microsecond=0) - timedelta(minutes=15)
    space.rooms.add_booking(
        MEETING_ROOM,
        start,
        start + timedelta(hours=3),
        membership_id=ADA,
        title="Team meeting",
        id=ADA_BOOKING,
    )


def empty_space(*, timezone: str = "UTC", seed: int = 0) -> SimSpace:
    space = SimSpace(timezone=timezone, seed=seed)
    space.add_access_token(ADMIN_TOKEN, role=Role.ADMIN, user="admin")
    return space


BUSY_ROOMS = 20
BOOKINGS_PER_DAY = 200


def rooms_space(*, timezone: str = "UTC", seed: int = 0) -> SimSpace:
    """The demo space plus ``BUSY_ROOMS`` rooms (resources ``30001``...) each with
    ``BOOKINGS_PER_DAY`` back-to-back bookings a day, yesterday to tomorrow, taken in
    turn by the demo members (benchmarks: a busy space's refresh)."""
    space = demo_space(timezone=timezone, seed=seed)
    members = [ADA, GRACE, KATHERINE, MARGARET]
    day = space.now().astimezone(space.zone).replace(hour=0, minute=0, second=0, microsecond=0)
    slot = timedelta(days=1) / BOOKINGS_PER_DAY
    for r in range(BUSY_ROOMS):
        rid = str(30001 + r)
        space.rooms.add_resource(f"Room {r + 1:02d}", id=rid)
        for i in range(-BOOKINGS_PER_DAY, 2 * BOOKINGS_PER_DAY):
            start = (day + i * slot).replace(microsecond=0)
            space.rooms.add_booking(
                rid,
                start,
                start + slot - timedelta(seconds=30),
                membership_id=members[i % len(members)],
                title="busy",
                id=f"{rid}-{i + BOOKINGS_PER_DAY}",
            )
    return space


SEEDS = {"demo": demo_space, "empty": empty_space, "rooms": rooms_space}
