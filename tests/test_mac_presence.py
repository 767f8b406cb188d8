from __future__ import annotations

from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from gateway.model import Membership
from gateway.readers.mac.confirm import CONFIRM_WAIT
from gateway.readers.mac.packets import DeviceSighting, Source
from gateway.readers.mac.presence import (
    ASK_AGAIN,
    FORGET_AFTER,
    Change,
    Device,
    DevicePresence,
    MemberStay,
    PresenceEvent,
)
from tests.mac_helpers import Desk, FakeClock, day_end

ALICE = Membership("m-alice", "Alice")
BOB = Membership("m-bob", "Bob")
LAPTOP = "00:16:3e:00:00:01"
PHONE = "00:16:3e:00:00:02"
STRANGER = "00:16:3e:00:00:99"
RANDOM = "da:a1:19:00:00:07"  # locally administered: a phone's private address
AWAY = 1800.0
# 2030-03-01 09:00 UTC
MORNING = datetime(2030, 3, 1, 9, 0, tzinfo=UTC).timestamp()


class Tokens(dict[str, Membership]):
    """The hot token cache: exact lookups, counted."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.lookups = 0

    def lookup(self, token: str) -> Membership | None:
        self.lookups += 1
        return self.get(token)


class Decided(DevicePresence):
    """Presence whose events are decided at once (see ``Desk``)."""

    desk: Desk

    def observe(self, s: DeviceSighting) -> PresenceEvent | None:
        event = super().observe(s)
        self.desk.hear(event)
        return event

    def sweep(self) -> list[PresenceEvent]:
        events = super().sweep()
        for event in events:
            self.desk.hear(event)
        return events


def make(
    tokens: Tokens,
    clock: FakeClock,
    *,
    checkout: bool = True,
    desk: Desk | None = None,
    **kw: object,
) -> Decided:
    desk = desk or Desk(clock)
    p = Decided(
        reader="wifi",
        lookup=tokens.lookup,
        attendance=kw.pop("attendance", desk),  # type: ignore[arg-type]
        away_after=AWAY,
        lookup_interval=60.0,
        checkout_on_departure=checkout,
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )
    p.desk = desk
    return p


def seen(mac: str, source: Source = Source.ARP, **kw: str) -> DeviceSighting:
    return DeviceSighting(mac, source, **kw)


def arrived(token: str, member: Membership, mac: str) -> PresenceEvent:
    return PresenceEvent(Change.ARRIVED, token, member.id, mac)


def departed(token: str, member: Membership, mac: str) -> PresenceEvent:
    return PresenceEvent(Change.DEPARTED, token, member.id, mac)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MORNING)


@pytest.fixture
def tokens() -> Tokens:
    return Tokens({LAPTOP: ALICE, PHONE: ALICE})


def test_arrival_announces_once_however_much_the_device_talks(
    tokens: Tokens, clock: FakeClock
) -> None:
    p = make(tokens, clock)
    assert p.observe(seen(LAPTOP)) == arrived(LAPTOP, ALICE, LAPTOP)
    for _ in range(100):
        clock.advance(30)
        assert p.observe(seen(LAPTOP, Source.DHCP)) is None
    assert p.sweep() == []
    assert p.present_members() == {ALICE.id: frozenset({LAPTOP})}


def test_second_device_of_a_present_member_is_not_a_new_arrival(
    tokens: Tokens, clock: FakeClock
) -> None:
    p = make(tokens, clock)
    assert p.observe(seen(LAPTOP)) is not None
    assert p.observe(seen(PHONE)) is None
    assert p.present_members() == {ALICE.id: frozenset({LAPTOP, PHONE})}


def test_departure_when_the_last_device_goes(tokens: Tokens, clock: FakeClock) -> None:
    p = make(tokens, clock)
    p.observe(seen(LAPTOP))
    clock.advance(600)
    p.observe(seen(PHONE))
    clock.advance(AWAY - 1)  # laptop silent for AWAY+599, phone for AWAY-1
    assert p.sweep() == []
    assert p.present_members() == {ALICE.id: frozenset({PHONE})}
    clock.advance(1)
    assert p.sweep() == [departed(LAPTOP, ALICE, PHONE)]
    assert p.present_members() == {}
    assert p.sweep() == []  # only once


def test_without_checkout_departure_is_silent_and_return_is_no_new_arrival(
    tokens: Tokens, clock: FakeClock
) -> None:
    p = make(tokens, clock, checkout=False)
    p.observe(seen(LAPTOP))
    clock.advance(AWAY)
    assert p.sweep() == []
    assert p.present_members() == {}
    clock.advance(3600)  # back after lunch: a new stay, but still checked in today
    assert p.observe(seen(LAPTOP)) is None
    assert p.present_members() == {ALICE.id: frozenset({LAPTOP})}
    p.desk.checked_in.clear()  # the check-in ended (e.g. a short time pass)
    clock.advance(60)
    assert p.observe(seen(LAPTOP)) == arrived(LAPTOP, ALICE, LAPTOP)


def test_still_here_on_a_new_day_is_announced_again(tokens: Tokens, clock: FakeClock) -> None:
    """Yesterday's check-in expired at midnight; the member is here today as well."""
    clock.wall = datetime(2030, 3, 1, 23, 50, tzinfo=UTC).timestamp()
    p = make(tokens, clock)
    assert p.observe(seen(LAPTOP)) is not None
    clock.advance(5 * 60)
    assert p.observe(seen(LAPTOP)) is None
    clock.advance(5 * 60)  # 00:00
    assert p.observe(seen(LAPTOP)) == arrived(LAPTOP, ALICE, LAPTOP)
    clock.advance(60)
    assert p.observe(seen(LAPTOP)) is None


def test_unknown_device_is_tracked_but_announces_nothing(tokens: Tokens, clock: FakeClock) -> None:
    p = make(tokens, clock)
    assert p.observe(seen(STRANGER, Source.DHCP, hostname="printer", ip="10.0.0.4")) is None
    dev = p.device(STRANGER)
    assert dev is not None
    assert (dev.present, dev.member_id, dev.hostname, dev.ip) == (True, None, "printer", "10.0.0.4")
    clock.advance(AWAY)
    assert p.sweep() == []
    assert not p.device(STRANGER).present  # type: ignore[union-attr]


def test_registered_while_present_checks_in_at_the_next_lookup(
    tokens: Tokens, clock: FakeClock
) -> None:
    p = make(tokens, clock)
    assert p.observe(seen(STRANGER)) is None
    tokens[STRANGER] = BOB  # registered on the portal, say
    clock.advance(30)
    assert p.observe(seen(STRANGER)) is None  # not looked up again yet (interval 60)
    clock.advance(30)
    assert p.observe(seen(STRANGER)) == arrived(STRANGER, BOB, STRANGER)


def test_lookups_are_rate_limited(tokens: Tokens, clock: FakeClock) -> None:
    p = make(tokens, clock)
    for _ in range(1000):
        p.observe(seen(STRANGER))
    per_device = len(tokens) + 5  # the spellings of one MAC, at most 7
    assert tokens.lookups <= per_device


@pytest.mark.parametrize(
    "registered",
    [
        "00:16:3E:00:00:55",
        "00-16-3e-00-00-55",
        "00-16-3E-00-00-55",
        "00163e000055",
        "0016.3e00.0055",
    ],
)
def test_other_spellings_are_found_and_used_as_the_token(registered: str, clock: FakeClock) -> None:
    p = make(Tokens({registered: BOB}), clock)
    assert p.observe(seen("00:16:3e:00:00:55")) == arrived(registered, BOB, "00:16:3e:00:00:55")


def test_ignored_devices_are_not_even_tracked(tokens: Tokens, clock: FakeClock) -> None:
    p = make(tokens, clock, ignore=[LAPTOP])
    assert p.observe(seen(LAPTOP)) is None
    assert p.device(LAPTOP) is None
    assert tokens.lookups == 0


def test_randomised_addresses_are_logged_as_such(clock: FakeClock) -> None:
    p = make(Tokens(), clock)
    with capture_logs() as logs:
        assert p.observe(seen(RANDOM)) is None
    new = [e for e in logs if e["event"] == "mac_device_new"]
    assert new == [
        {
            "event": "mac_device_new",
            "log_level": "info",
            "mac": "***************07",
            "source": Source.ARP,
            "randomised": True,
            "reader": "wifi",
        }
    ]
    assert any(e["event"] == "mac_randomised_unregistered" for e in logs)
    assert all(RANDOM not in str(e) for e in logs)


def test_randomised_but_registered_checks_in(clock: FakeClock) -> None:
    p = make(Tokens({RANDOM: BOB}), clock)
    assert p.observe(seen(RANDOM)) == arrived(RANDOM, BOB, RANDOM)


def test_token_moved_to_another_member(tokens: Tokens, clock: FakeClock) -> None:
    p = make(tokens, clock)
    p.observe(seen(LAPTOP))
    tokens[LAPTOP] = BOB
    clock.advance(60)
    assert p.observe(seen(LAPTOP)) == arrived(LAPTOP, BOB, LAPTOP)
    assert p.present_members() == {BOB.id: frozenset({LAPTOP})}


def test_token_deleted_ends_the_stay_without_a_checkout(tokens: Tokens, clock: FakeClock) -> None:
    p = make(tokens, clock)
    p.observe(seen(LAPTOP))
    del tokens[LAPTOP]
    clock.advance(60)
    assert p.observe(seen(LAPTOP)) is None
    assert p.present_members() == {}
    clock.advance(AWAY)
    assert p.sweep() == []


def test_wall_clock_jump_does_not_send_everyone_home(tokens: Tokens, clock: FakeClock) -> None:
    """NTP corrects a Pi's clock by hours after boot; silence is measured monotonically."""
    p = make(tokens, clock)
    p.observe(seen(LAPTOP))
    clock.wall += 6 * 3600
    assert p.sweep() == []
    clock.mono += AWAY
    assert p.sweep() == [departed(LAPTOP, ALICE, LAPTOP)]


def test_absent_devices_are_forgotten_after_a_month(tokens: Tokens, clock: FakeClock) -> None:
    p = make(tokens, clock)
    p.observe(seen(STRANGER))
    p.take_changes()
    clock.advance(FORGET_AFTER - 1)
    p.sweep()
    assert p.device(STRANGER) is not None
    clock.advance(1)
    p.sweep()
    assert p.device(STRANGER) is None
    assert p.take_changes().forgotten == [STRANGER]


def test_the_table_is_bounded(clock: FakeClock) -> None:
    p = make(Tokens(), clock, max_devices=100)
    with capture_logs() as logs:
        for i in range(1000):
            p.observe(seen(f"00:16:3e:00:{i >> 8:02x}:{i & 0xFF:02x}"))
            clock.advance(0.001)
    assert len(p) <= 100
    assert p.device("00:16:3e:00:03:e7") is not None  # the newest stays
    assert any(e["event"] == "mac_table_full" for e in logs)


def test_changes_for_the_store(tokens: Tokens, clock: FakeClock) -> None:
    p = make(tokens, clock)
    p.observe(seen(LAPTOP))
    p.observe(seen(STRANGER))
    changes = p.take_changes()
    assert sorted(d.mac for d in changes.devices) == [LAPTOP, STRANGER]
    assert [(s.member_id, s.token) for s in changes.members] == [(ALICE.id, LAPTOP)]
    assert not p.take_changes()
    clock.advance(AWAY)
    p.sweep()
    changes = p.take_changes()
    assert changes.gone == [ALICE.id]
    assert all(not d.present for d in changes.devices)


def test_requeue_after_a_failed_save(tokens: Tokens, clock: FakeClock) -> None:
    p = make(tokens, clock)
    p.observe(seen(LAPTOP))
    failed = p.take_changes()
    p.requeue(failed)
    again = p.take_changes()
    assert [d.mac for d in again.devices] == [LAPTOP]
    assert [s.member_id for s in again.members] == [ALICE.id]


def _saved(p: DevicePresence) -> tuple[list[Device], list[MemberStay]]:
    """What a store would hold after saving everything (copies, as if read back)."""
    changes = p.take_changes()
    devices = [
        Device(**{f: getattr(d, f) for f in Device.__dataclass_fields__}) for d in changes.devices
    ]
    stays = [MemberStay(s.member_id, s.token) for s in changes.members]
    return devices, stays


def test_restart_while_present_does_not_announce_again(tokens: Tokens, clock: FakeClock) -> None:
    before = make(tokens, clock)
    before.observe(seen(LAPTOP))
    devices, stays = _saved(before)
    clock.advance(120)  # restart: Attendance still knows the check-in
    after = make(tokens, clock, desk=before.desk)
    after.restore(devices, stays)
    assert after.present_members() == {ALICE.id: frozenset({LAPTOP})}
    assert after.observe(seen(LAPTOP)) is None
    assert after.sweep() == []


def test_departed_while_down_checks_out_at_the_first_sweep(
    tokens: Tokens, clock: FakeClock
) -> None:
    before = make(tokens, clock)
    before.observe(seen(LAPTOP))
    devices, stays = _saved(before)
    clock.advance(AWAY + 600)  # the gateway was off for longer than away_after
    after = make(tokens, clock, desk=before.desk)
    after.restore(devices, stays)
    assert after.sweep() == [departed(LAPTOP, ALICE, LAPTOP)]
    assert after.present_members() == {}


def test_restored_stay_without_present_devices_departs(tokens: Tokens, clock: FakeClock) -> None:
    p = make(tokens, clock)
    p.desk.check_in(ALICE)
    p.restore([], [MemberStay(ALICE.id, LAPTOP)])
    assert p.sweep() == [departed(LAPTOP, ALICE, "")]


# -- issue 12 case 5: silence alone is not departure; one check-in a day ---------------


class Asked:
    """A Confirmer that records the probes; ``ok`` says whether one could be sent."""

    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.probes: list[tuple[str, str]] = []

    def probe(self, mac: str, ip: str) -> bool:
        self.probes.append((mac, ip))
        return self.ok


def test_a_silent_device_that_answers_stays(tokens: Tokens, clock: FakeClock) -> None:
    asked = Asked()
    p = make(tokens, clock, confirm=asked)
    p.observe(seen(PHONE, ip="10.0.0.7"))
    clock.advance(AWAY)
    assert p.sweep() == []
    assert asked.probes == [(PHONE, "10.0.0.7")]
    clock.advance(0.2)
    assert p.observe(seen(PHONE, ip="10.0.0.7")) is None  # its ARP reply
    clock.advance(CONFIRM_WAIT)
    assert p.sweep() == []
    assert p.present_members() == {ALICE.id: frozenset({PHONE})}
    assert (p.asking.answered, p.asking.unanswered) == (1, 0)


def test_a_silent_device_that_does_not_answer_leaves(tokens: Tokens, clock: FakeClock) -> None:
    asked = Asked()
    p = make(tokens, clock, confirm=asked)
    p.observe(seen(PHONE, ip="10.0.0.7"))
    clock.advance(AWAY)
    assert p.sweep() == []
    clock.advance(CONFIRM_WAIT - 0.1)
    assert p.sweep() == []
    clock.advance(0.1)
    assert p.sweep() == [departed(PHONE, ALICE, PHONE)]
    assert len(asked.probes) == 1
    assert (p.asking.answered, p.asking.unanswered) == (0, 1)


def test_without_an_address_or_a_way_to_ask_silence_decides(
    tokens: Tokens, clock: FakeClock
) -> None:
    p = make(tokens, clock, confirm=Asked())
    p.observe(seen(PHONE))  # no IPv4 address ever heard
    clock.advance(AWAY)
    assert p.sweep() == [departed(PHONE, ALICE, PHONE)]
    q = make(tokens, clock, confirm=Asked(ok=False))
    q.observe(seen(LAPTOP, ip="10.0.0.8"))
    clock.advance(AWAY)
    assert q.sweep() == [departed(LAPTOP, ALICE, LAPTOP)]


def test_unregistered_devices_are_never_asked(clock: FakeClock) -> None:
    asked = Asked()
    p = make(Tokens(), clock, confirm=asked)
    p.observe(seen("00:16:3e:00:00:99", ip="10.0.0.9"))
    clock.advance(AWAY)
    assert p.sweep() == []
    assert asked.probes == []
    assert p.present_count == 0


def test_back_the_same_day_after_a_checkout_is_not_a_second_check_in(
    tokens: Tokens, clock: FakeClock
) -> None:
    """Cobot: one check-in per member per day ("already checked in for that day"); a
    second one would use a second time pass."""
    p = make(tokens, clock)
    assert p.observe(seen(LAPTOP)) == arrived(LAPTOP, ALICE, LAPTOP)
    clock.advance(AWAY)
    assert p.sweep() == [departed(LAPTOP, ALICE, LAPTOP)]
    clock.advance(3600)
    with capture_logs() as logs:
        assert p.observe(seen(LAPTOP, Source.DHCP)) is None
        assert p.observe(seen(PHONE)) is None
    assert [e["event"] for e in logs if e["event"].startswith("mac_member")] == [
        "mac_member_returned_after_checkout"
    ]
    assert p.present_members() == {ALICE.id: frozenset({LAPTOP, PHONE})}
    # Leaving again is no second check-out: they were not checked in again.
    clock.advance(AWAY)
    assert p.sweep() == []
    assert p.present_members() == {}


def test_back_the_next_day_after_a_checkout_is_checked_in(tokens: Tokens, clock: FakeClock) -> None:
    p = make(tokens, clock)
    p.observe(seen(LAPTOP))
    clock.advance(AWAY)
    assert p.sweep() == [departed(LAPTOP, ALICE, LAPTOP)]
    clock.advance(86400)
    assert p.observe(seen(LAPTOP)) == arrived(LAPTOP, ALICE, LAPTOP)


# -- one owner of presence: Attendance answers, whoever checked the member in or out ----


def test_checked_in_at_the_door_is_not_announced_by_wifi(tokens: Tokens, clock: FakeClock) -> None:
    p = make(tokens, clock)
    p.desk.check_in(ALICE)  # a card at the front door, a minute ago
    with capture_logs() as logs:
        assert p.observe(seen(PHONE)) is None
        clock.advance(3600)
        assert p.observe(seen(PHONE)) is None
    assert not [e for e in logs if e["event"] == "mac_member_arrived"]
    assert p.present_members() == {ALICE.id: frozenset({PHONE})}
    # Their check-in is theirs to end: the phone leaving checks them out (configured so).
    clock.advance(AWAY)
    assert p.sweep() == [departed(PHONE, ALICE, PHONE)]


def test_checked_out_at_the_exit_is_not_checked_in_again_by_the_phone(
    tokens: Tokens, clock: FakeClock
) -> None:
    p = make(tokens, clock)
    assert p.observe(seen(PHONE)) == arrived(PHONE, ALICE, PHONE)
    p.desk.check_out(ALICE.id)  # an exit reader, not the phone leaving
    clock.advance(ASK_AGAIN + 60)
    with capture_logs() as logs:
        assert p.observe(seen(PHONE)) is None
        assert p.observe(seen(LAPTOP)) is None
    assert [e["event"] for e in logs if e["event"].startswith("mac_member")] == [
        "mac_member_returned_after_checkout"
    ]
    # Checked in again on purpose (a card): nothing for the phone to do, and the next
    # day it announces as usual.
    p.desk.check_in(ALICE)
    assert p.observe(seen(PHONE)) is None
    clock.advance(86400)
    assert p.observe(seen(PHONE)) == arrived(PHONE, ALICE, PHONE)


def test_refused_today_is_not_asked_again_until_tomorrow(tokens: Tokens, clock: FakeClock) -> None:
    p = make(tokens, clock)
    p.desk.admit = False
    assert p.observe(seen(LAPTOP)) == arrived(LAPTOP, ALICE, LAPTOP)
    p.desk.refused[LAPTOP] = day_end(p.desk.now())  # Cobot: no time passes left
    clock.advance(ASK_AGAIN * 3)
    assert p.observe(seen(LAPTOP)) is None
    clock.advance(86400)
    assert p.observe(seen(LAPTOP)) == arrived(LAPTOP, ALICE, LAPTOP)


def test_an_arrival_not_admitted_is_asked_again_after_a_while_not_per_packet(
    tokens: Tokens, clock: FakeClock
) -> None:
    """Offline and refused by the offline policy: Attendance hears nothing. The tap is
    not repeated at packet rate, but once ``ASK_AGAIN`` has passed."""
    p = make(tokens, clock)
    p.desk.admit = False
    assert p.observe(seen(LAPTOP)) == arrived(LAPTOP, ALICE, LAPTOP)
    for _ in range(int(ASK_AGAIN // 30) - 1):
        clock.advance(30)
        assert p.observe(seen(LAPTOP)) is None
    clock.advance(30)
    assert p.observe(seen(LAPTOP)) == arrived(LAPTOP, ALICE, LAPTOP)


def test_not_checked_in_means_no_check_out(tokens: Tokens, clock: FakeClock) -> None:
    p = make(tokens, clock)
    p.desk.admit = False  # the arrival was not admitted
    p.observe(seen(LAPTOP))
    clock.advance(AWAY)
    assert p.sweep() == []


async def test_the_same_day_rule_survives_a_restart_as_attendance_does(
    tokens: Tokens, clock: FakeClock, tmp_path
) -> None:
    """Checked out (here: by departure), the gateway restarts, the member comes back the
    same day: still no second check-in, because the real Attendance kept the check-out
    in the gateway database. The next day: checked in."""
    from gateway.attendance import Attendance
    from gateway.readers.mac.store import PresenceStore
    from gateway.store import open_db

    db = await open_db(tmp_path / "state")
    attendance = Attendance(db)
    await attendance.load()
    p = make(tokens, clock, attendance=attendance)
    store = PresenceStore(tmp_path / "presence.sqlite")
    await store.open()
    assert p.observe(seen(LAPTOP)) == arrived(LAPTOP, ALICE, LAPTOP)
    # The decision stored the check-in and told Attendance:
    await attendance.checked_in(ALICE.id, day_end(p.desk.now()))
    clock.advance(AWAY)
    assert p.sweep() == [departed(LAPTOP, ALICE, LAPTOP)]
    await attendance.checked_out(ALICE.id, p.desk.now())
    await store.save(p.take_changes())
    await store.aclose()
    await db.close()

    db = await open_db(tmp_path / "state")  # the restart
    try:
        attendance = Attendance(db)
        await attendance.load()
        again = PresenceStore(tmp_path / "presence.sqlite")
        devices, stays = await again.open()
        await again.aclose()
        q = make(tokens, clock, attendance=attendance)
        q.restore(devices, stays)
        clock.advance(600)
        with capture_logs() as logs:
            assert q.observe(seen(LAPTOP)) is None
        assert "mac_member_returned_after_checkout" in [e["event"] for e in logs]
        assert q.present_members() == {ALICE.id: frozenset({LAPTOP})}
        clock.advance(86400)
        await attendance.prune(datetime.fromtimestamp(clock.time(), UTC))
        assert q.observe(seen(LAPTOP)) == arrived(LAPTOP, ALICE, LAPTOP)
    finally:
        await db.close()
