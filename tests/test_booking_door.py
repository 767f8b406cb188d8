"""Meeting-room doors (issue 14): the booking rule on a snapshot fetched over HTTP from
the simulated Cobot, in a real SQLite file."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from gateway.bookings.snapshot import BookingSnapshot
from gateway.cobot.client import CobotClient
from gateway.cobot.ratelimit import Group, RateLimiter
from gateway.model import Direction, Outcome, RecordKind, Tap
from gateway.rules.booking import WALK_UP_MIN_SECONDS
from gateway.sim.bookings import SimBooking
from gateway.sim.seed import ADA, ADMIN_TOKEN, GRACE, KATHERINE, NFC_TOKEN, PASS_TOKEN, RDM_TOKEN
from tests.booking_rig import ROOM, T0, Rig, fresh_space, rig

S = timedelta(seconds=1)


def room_bookings(r: Rig) -> list[SimBooking]:
    return [b for b in r.space.rooms.bookings.values() if b.resource_id == ROOM]


M = timedelta(minutes=1)


async def test_booked_member_in_other_member_out_with_plain_words(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.space.rooms.add_booking(ROOM, T0, T0 + 60 * M, membership_id=ADA)
        r.space.rooms.add_booking(ROOM, T0 + 5 * 60 * M, T0 + 6 * 60 * M, membership_id=GRACE)
        await r.refresher().refresh_once()
        rule = r.rule(grace_before=600, grace_after=300)
        ada = await r.tap(rule, RDM_TOKEN, T0 + 10 * M)
        assert ada.outcome is Outcome.OPENED_BOOKING and ada.admits
        assert ada.member is not None and ada.member.id == ADA
        assert ada.record is None  # check_in = false: nothing recorded
        grace = await r.tap(rule, NFC_TOKEN, T0 + 10 * M)
        assert grace.outcome is Outcome.NO_BOOKING and not grace.admits
        assert grace.reason is not None
        assert grace.reason.startswith("Room 7 is booked by someone else until")
        assert "next: yours at" in grace.reason and "door opens" in grace.reason
        nobody = await r.tap(rule, PASS_TOKEN, T0 + 10 * M)
        assert nobody.reason is not None and "next" not in nobody.reason


async def test_grace_edges_to_the_second(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        start, end = T0 + 60 * M, T0 + 120 * M
        r.space.rooms.add_booking(ROOM, start, end, membership_id=ADA)
        await r.refresher().refresh_once()
        rule = r.rule(grace_before=600, grace_after=300)
        cases = {
            start - 600 * S - S: False,
            start - 600 * S: True,
            end + 300 * S: True,
            end + 300 * S + S: False,
        }
        for at, admits in cases.items():
            verdict = await r.tap(rule, RDM_TOKEN, at)
            assert verdict.admits is admits, (at, verdict)


async def test_deleted_booking_stops_opening_after_the_next_refresh(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        booking = r.space.rooms.add_booking(ROOM, T0, T0 + 60 * M, membership_id=ADA)
        refresher = r.refresher()
        await refresher.refresh_once()
        rule = r.rule()
        assert (await r.tap(rule, RDM_TOKEN)).admits
        r.space.rooms.remove_booking(booking.id)
        assert (await r.tap(rule, RDM_TOKEN)).admits  # the snapshot does not know yet
        await refresher.refresh_once()
        assert (await r.tap(rule, RDM_TOKEN)).outcome is Outcome.NO_BOOKING
        # and the disk agrees: a restart does not bring it back
        reloaded = BookingSnapshot(r.db)
        await reloaded.load()
        room = reloaded.room(ROOM)
        assert room is not None and room.bookings == ()


async def test_admin_block_admits_nobody_event_booking_admits_its_member(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.space.rooms.add_booking(ROOM, T0, T0 + 60 * M, title="maintenance")
        r.space.rooms.add_booking(
            ROOM, T0 + 120 * M, T0 + 180 * M, membership_id=GRACE, event_id="ev-1"
        )
        await r.refresher().refresh_once()
        rule = r.rule(max_age=86_400)
        blocked = await r.tap(rule, RDM_TOKEN, T0 + 5 * M)
        assert blocked.outcome is Outcome.NO_BOOKING
        assert blocked.reason is not None and blocked.reason.startswith("Room 7 is blocked until")
        assert (await r.tap(rule, NFC_TOKEN, T0 + 130 * M)).outcome is Outcome.OPENED_BOOKING


async def test_several_units_admit_everyone_holding_a_booking(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.space.rooms.resources[ROOM].units = 3
        r.space.rooms.add_booking(ROOM, T0, T0 + 60 * M, membership_id=ADA)
        r.space.rooms.add_booking(ROOM, T0, T0 + 60 * M, membership_id=GRACE)
        await r.refresher().refresh_once()
        rule = r.rule()
        assert (await r.tap(rule, RDM_TOKEN)).admits
        assert (await r.tap(rule, NFC_TOKEN)).admits
        assert not (await r.tap(rule, PASS_TOKEN)).admits


async def test_check_in_true_records_a_check_in(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.space.rooms.add_booking(ROOM, T0, T0 + 60 * M, membership_id=ADA)
        await r.refresher().refresh_once()
        verdict = await r.tap(r.rule(check_in=True), RDM_TOKEN)
        assert verdict.record is RecordKind.CHECK_IN and verdict.until is not None
        await r.attendance.checked_in(ADA, verdict.until)
        again = await r.tap(r.rule(check_in=True), RDM_TOKEN)
        assert again.admits and again.record is None  # already checked in today


async def test_offline_decides_from_the_snapshot(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.space.rooms.add_booking(ROOM, T0, T0 + 60 * M, membership_id=ADA)
        refresher = r.refresher()
        await refresher.refresh_once()
        r.space.faults.set("error")  # Cobot answers 503 from now on
        delay = await refresher.refresh_once()
        assert delay > 0 and r.breaker.is_open and refresher.last_error
        rule = r.rule(check_in=True)
        ada = await r.tap(rule, RDM_TOKEN)
        assert ada.outcome is Outcome.OPENED_OFFLINE and ada.admits
        assert ada.live is False and ada.record is RecordKind.CHECK_IN  # queued
        assert ada.reason is not None and "unreachable" in ada.reason
        assert (await r.tap(rule, NFC_TOKEN)).outcome is Outcome.NO_BOOKING


async def test_no_snapshot_keeps_the_door_shut_and_says_so(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        verdict = await r.tap(r.rule(), RDM_TOKEN)
        assert verdict.outcome is Outcome.DENIED_OFFLINE
        assert verdict.reason is not None and "no bookings of door 'room'" in verdict.reason


async def test_snapshot_too_old(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.space.rooms.add_booking(ROOM, T0, T0 + 10 * 60 * M, membership_id=ADA)
        await r.refresher().refresh_once()
        rule = r.rule(max_age=1800)
        at = T0 + 1800 * S
        assert (await r.tap(rule, RDM_TOKEN, at)).outcome is Outcome.OPENED_BOOKING
        stale = await r.tap(rule, RDM_TOKEN, at + S)
        assert stale.outcome is Outcome.OPENED_OFFLINE
        assert stale.reason == "bookings snapshot 30 min old (limit 30 min)"
        # two days on, the snapshot no longer reaches now: nobody gets in
        gone = await r.tap(rule, RDM_TOKEN, T0 + timedelta(days=2, hours=1))
        assert gone.outcome is Outcome.DENIED_OFFLINE
        assert gone.reason is not None and "do not reach now" in gone.reason


async def test_walk_up_books_the_free_room_and_a_second_tap_ends_it(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.refresher().refresh_once()
        rule = r.rule(walk_up_minutes=30)
        first = await r.tap(rule, RDM_TOKEN, T0 + 20 * S)
        assert first.outcome is Outcome.OPENED_WALK_UP, first
        (made,) = room_bookings(r)
        assert made.membership_id == ADA and made.resource_id == ROOM
        # from the next whole minute (not in the past), for 30 minutes
        assert (made.start, made.end) == (T0 + M, T0 + 31 * M)
        # somebody else is refused: the room is taken from 09:01
        other = await r.tap(rule, NFC_TOKEN, T0 + 30 * S)
        assert other.outcome is Outcome.NO_BOOKING
        assert other.reason is not None and "would overlap the booking at" in other.reason
        later = await r.tap(rule, NFC_TOKEN, T0 + 2 * M)
        assert later.reason is not None and "booked by someone else" in later.reason
        # a double tap does not end it, and it holds before its first minute began
        soon = await r.tap(r.rule(walk_up_minutes=30, grace_before=0), RDM_TOKEN, T0 + 40 * S)
        assert soon.outcome is Outcome.OPENED_BOOKING
        r.space.advance(WALK_UP_MIN_SECONDS + 600)
        ended = await r.tap(rule, RDM_TOKEN, r.space.now())
        assert ended.outcome is Outcome.WALK_UP_ENDED and ended.admits
        assert made.id in r.space.rooms.bookings
        assert r.space.rooms.bookings[made.id].end == r.space.now().replace(second=0)
        # the room is free again for the next person
        assert (await r.tap(rule, NFC_TOKEN, r.space.now())).outcome is Outcome.OPENED_WALK_UP


async def test_walk_up_refused_with_cobots_reason_and_never_offline(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        room = r.space.rooms.resources[ROOM]
        room.booking_times = [("10:00", "17:00", [1, 2])]  # T0 is Monday 09:00 UTC
        await r.refresher().refresh_once()
        rule = r.rule(walk_up_minutes=30)
        refused = await r.tap(rule, PASS_TOKEN)
        assert refused.outcome is Outcome.REFUSED
        assert (
            refused.reason
            == "Room 7 cannot be booked now: Room 7 can only be booked Mon, Tue 10:00-17:00."
        )
        assert not room_bookings(r)
        room.booking_times = []
        r.space.faults.set("error")
        await r.refresher().refresh_once()  # fails: the breaker opens
        offline = await r.tap(rule, PASS_TOKEN)
        assert offline.outcome is Outcome.DENIED_OFFLINE
        assert offline.reason is not None and "walk-up booking needs Cobot" in offline.reason
        assert not room_bookings(r)


async def test_wrong_resource_id_is_a_clear_error(tmp_path: Path) -> None:
    import pytest

    from gateway.errors import GatewayError

    async with rig(tmp_path) as r:
        refresher = r.refresher(resource_id="999")
        with pytest.raises(GatewayError, match=r"door 'room': Cobot has no resource '999'"):
            await refresher.refresh_once()
        assert refresher.last_error is not None  # status shows it beside the room


async def test_units_left_for_a_member_of_katherine(tmp_path: Path) -> None:
    # Katherine's booking tomorrow shows as "tomorrow" in the refusal.
    async with rig(tmp_path) as r:
        r.space.rooms.add_booking(
            ROOM, T0 + timedelta(days=1), T0 + timedelta(days=1, hours=1), membership_id=KATHERINE
        )
        await r.refresher().refresh_once()
        verdict = await r.tap(r.rule(), PASS_TOKEN)
        assert verdict.reason is not None and "tomorrow" in verdict.reason


async def test_no_429_while_several_rooms_refresh(tmp_path: Path) -> None:
    """Six rooms start refreshing at once, as their parts do at start; the shared limiter
    spaces them out. Both sides' windows are shortened alike (60 s -> 2 s)."""
    async with rig(tmp_path) as r:
        r.space.rate_limit.window = 2.0
        r.space.rate_limit.default_limit = 8
        ids = [f"80{i}" for i in range(6)]
        for rid in ids:
            r.space.rooms.add_resource(f"Room {rid}", id=rid)
            r.space.rooms.add_booking(rid, T0, T0 + 60 * M, membership_id=ADA)
        limiter = RateLimiter({Group.DEFAULT: 8, Group.BOOKING_WRITES: 10}, window=2.25)
        async with CobotClient(r.sim.url, ADMIN_TOKEN, limiter, timeout=2.0) as client:
            r.client = client
            refreshers = [r.refresher(rid, door=f"room-{rid}") for rid in ids]
            tasks = [asyncio.create_task(x.run()) for x in refreshers]
            try:
                async with asyncio.timeout(30):
                    while not all(r.snapshot.room(rid) for rid in ids):
                        await asyncio.sleep(0.05)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        assert r.space.rate_limit.rejected == 0
        assert 0 < r.space.rate_limit.max_in_window <= 8
        assert all(x.refreshes == 1 and x.last_error is None for x in refreshers)


async def test_walk_ups_keep_to_ten_booking_writes_a_minute(tmp_path: Path) -> None:
    """Eleven members walk up to a room of 20 units within a minute: ten are booked, the
    eleventh is told to try again shortly; Cobot never answers 429."""
    space = fresh_space()
    space.rooms.resources[ROOM].units = 20
    tokens = []
    for i in range(11):
        member = space.add_member(f"Walker {i}", f"walker{i}@example.com", "pw")
        tokens.append(f"WALK{i:06d}")
        space.register_token(tokens[-1], member.id)
    async with rig(tmp_path, space) as r:
        await r.refresher().refresh_once()
        rule = r.rule(walk_up_minutes=30)
        rule._deadline = 1.0  # what a person waits for a slot; shortened for the test
        verdicts = [await r.tap(rule, token) for token in tokens]
        assert [v.outcome for v in verdicts] == [Outcome.OPENED_WALK_UP] * 10 + [Outcome.REFUSED]
        assert verdicts[-1].reason == (
            "too many bookings made in the last minute (Cobot allows 10): try again shortly"
        )
        assert r.space.rate_limit.rejected == 0
        assert len(room_bookings(r)) == 10


async def test_member_and_booking_doors_are_chosen_per_door(tmp_path: Path) -> None:
    from gateway.bookings.doors import DoorRules
    from gateway.config.loader import parse_config
    from gateway.rules.booking import BookingRule
    from gateway.rules.member import MemberRule

    cfg = parse_config(
        {
            "gateway": {"state_dir": str(tmp_path)},
            "cobot": {"base_url": "http://127.0.0.1:9"},
            "doors": [
                {"name": "front", "type": "command", "command": ["true"]},
                {"name": "street", "type": "command", "command": ["true"], "access": "member"},
                {
                    "name": "room-1",
                    "type": "command",
                    "command": ["true"],
                    "access": "booking",
                    "resource_id": ROOM,
                    "walk_up_minutes": 15,
                },
            ],
        },
        "t.toml",
    )
    async with rig(tmp_path) as r:
        rules = DoorRules.build(
            cfg,
            cache=r.cache,
            attendance=r.attendance,
            snapshot=r.snapshot,
            client=r.client,
            breaker=r.breaker,
        )
        assert set(rules.rules) == {"street", "room-1"}  # "front": the default rule
        assert isinstance(rules.rules["street"], MemberRule)
        room = rules.rules["room-1"]
        assert isinstance(room, BookingRule) and room.room.walk_up_minutes == 15
        # A walk-up room: its bookings are taken back when the door fails (bookings/undo).
        assert [p.name for p in rules.parts()] == ["bookings-room-1", "walk-up-undo"]
        assert rules.undo is not None and rules.hooks() == [rules.undo.decided]
        street = await rules.rules["street"].judge(Tap("street", RDM_TOKEN, Direction.IN, T0, 0.0))
        assert street.outcome is Outcome.OPENED_MEMBER and street.record is None
        assert rules.status()["room-1"]["snapshot_age_s"] is None


async def test_walk_up_that_would_overlap_the_next_booking_says_so(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.space.rooms.add_booking(ROOM, T0 + 10 * M, T0 + 70 * M, membership_id=GRACE)
        await r.refresher().refresh_once()
        verdict = await r.tap(r.rule(walk_up_minutes=30, grace_before=0), RDM_TOKEN)
        assert verdict.outcome is Outcome.NO_BOOKING
        assert verdict.reason is not None
        assert verdict.reason.startswith("no booking of Room 7 now; a 30-minute walk-up")
        assert "would overlap the booking at" in verdict.reason
        assert not [b for b in room_bookings(r) if b.membership_id == ADA]


async def test_garbage_from_the_api_keeps_the_snapshot(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.space.rooms.add_booking(ROOM, T0, T0 + 60 * M, membership_id=ADA)
        refresher = r.refresher()
        await refresher.refresh_once()
        r.space.faults.set("garbage")
        delay = await refresher.refresh_once()
        assert 0 < delay < 300 and refresher.last_error is not None
        assert "not JSON" in refresher.last_error
        assert not r.breaker.is_open  # an answer, if a bad one: not an outage
        assert (await r.tap(r.rule(), RDM_TOKEN)).outcome is Outcome.OPENED_BOOKING


def looks(r: Rig) -> int:
    return sum(1 for q in r.space.requests if q.template == "/api/resources/:id/bookings")


async def test_a_booking_made_since_the_refresh_opens_at_once(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await r.refresher().refresh_once()
        rule = r.rule()
        r.space.rooms.add_booking(ROOM, T0, T0 + 60 * M, membership_id=ADA)  # on her phone
        before = looks(r)
        ada = await r.tap(rule, RDM_TOKEN)
        assert ada.outcome is Outcome.OPENED_BOOKING
        assert looks(r) == before + 1
        # the look is remembered, and the next miss within LOOK_INTERVAL asks nobody
        assert (await r.tap(rule, NFC_TOKEN)).outcome is Outcome.NO_BOOKING
        assert (await r.tap(rule, RDM_TOKEN)).admits
        assert looks(r) == before + 1
        reloaded = BookingSnapshot(r.db)
        await reloaded.load()
        room = reloaded.room(ROOM)
        assert room is not None and [b.membership for b in room.bookings if b.membership]


async def test_a_live_look_drops_what_cobot_no_longer_has(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        grace = r.space.rooms.add_booking(ROOM, T0, T0 + 60 * M, membership_id=GRACE)
        await r.refresher().refresh_once()
        r.space.rooms.remove_booking(grace.id)
        rule = r.rule()
        assert (await r.tap(rule, RDM_TOKEN)).outcome is Outcome.NO_BOOKING  # looked
        room = r.snapshot.room(ROOM)
        assert room is not None and room.bookings == ()
        assert (await r.tap(rule, NFC_TOKEN)).outcome is Outcome.NO_BOOKING


async def test_cobot_not_answering_the_look_decides_from_the_snapshot(tmp_path: Path) -> None:
    import time

    async with rig(tmp_path) as r:
        await r.refresher().refresh_once()
        r.space.faults.set("hang")
        rule = r.rule()
        rule._look_deadline = 0.3  # what a person waits; shortened for the test
        started = time.monotonic()
        verdict = await r.tap(rule, RDM_TOKEN)
        assert verdict.outcome is Outcome.NO_BOOKING
        assert time.monotonic() - started < 1.5
        assert r.breaker.is_open
        r.space.faults.clear()


async def test_a_card_registered_since_the_last_sync_is_asked_about(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        r.space.rooms.add_booking(ROOM, T0, T0 + 60 * M, membership_id=ADA)
        await r.refresher().refresh_once()
        r.space.register_token("0ANEWCARD1", ADA)  # Ada's new card, not synced yet
        rule = r.rule()
        verdict = await r.tap(rule, "0ANEWCARD1")
        assert verdict.outcome is Outcome.OPENED_BOOKING
        member = r.cache.lookup("0ANEWCARD1")
        assert member is not None and member.id == ADA
        unknown = await r.tap(rule, "0ANOBODY01")
        assert unknown.outcome is Outcome.UNKNOWN_TOKEN  # within 10 s: not asked again
