"""Issue 12 case 5 in pure form: the ARP request on bytes, and the presence rules that
use it (silence alone is not departure; no second check-in the same day after a
departure's check-out). Real packets: tests/test_mac_netns.py."""

from __future__ import annotations

import pytest
from scapy.layers.l2 import ARP, Ether
from structlog.testing import capture_logs

from gateway.readers.mac.confirm import CONFIRM_WAIT, ArpConfirmer, arp_request
from gateway.readers.mac.packets import Source
from tests.mac_helpers import FakeClock
from tests.test_mac_presence import (
    ALICE,
    AWAY,
    LAPTOP,
    MORNING,
    PHONE,
    Tokens,
    arrived,
    departed,
    make,
    seen,
)

OURS = bytes.fromhex("02aabbccddee")


def test_arp_request_is_a_unicast_who_has() -> None:
    frame = arp_request(
        sender_mac=OURS,
        sender_ip=bytes([10, 0, 0, 1]),
        target_mac=bytes.fromhex("00163e000001"),
        target_ip=bytes([10, 0, 0, 7]),
    )
    assert len(frame) == 60
    packet = Ether(frame)
    assert packet.dst == "00:16:3e:00:00:01"  # to the device alone, never broadcast
    assert packet.src == "02:aa:bb:cc:dd:ee"
    arp = packet[ARP]
    assert (arp.op, arp.hwsrc, arp.psrc, arp.hwdst, arp.pdst) == (
        1,
        "02:aa:bb:cc:dd:ee",
        "10.0.0.1",
        "00:00:00:00:00:00",
        "10.0.0.7",
    )


def test_arp_request_rejects_wrong_lengths() -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        arp_request(sender_mac=b"\x00", sender_ip=bytes(4), target_mac=OURS, target_ip=bytes(4))
    with pytest.raises(ValueError, match="4 bytes"):
        arp_request(sender_mac=OURS, sender_ip=bytes(16), target_mac=OURS, target_ip=bytes(4))


def test_a_probe_that_cannot_be_sent_warns_once_and_says_so() -> None:
    def opener(interface: str) -> object:
        raise PermissionError(1, "Operation not permitted")

    confirmer = ArpConfirmer("lan0", opener=opener)  # type: ignore[arg-type]
    with capture_logs() as logs:
        assert confirmer.probe(LAPTOP, "10.0.0.7") is False
        assert confirmer.probe(LAPTOP, "10.0.0.7") is False
    assert [e["log_level"] for e in logs] == ["warning", "debug"]
    assert confirmer.failed == 2
    assert confirmer.probe(LAPTOP, "not-an-ip") is False  # nothing to ask


class Asked:
    """A Confirmer that records the probes; ``ok`` says whether one could be sent."""

    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.probes: list[tuple[str, str]] = []

    def probe(self, mac: str, ip: str) -> bool:
        self.probes.append((mac, ip))
        return self.ok


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MORNING)


@pytest.fixture
def tokens() -> Tokens:
    return Tokens({LAPTOP: ALICE, PHONE: ALICE})


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


async def test_the_same_day_rule_survives_a_restart(
    tokens: Tokens, clock: FakeClock, tmp_path
) -> None:
    """Checked out by departure, the gateway restarts, the member comes back the same
    day: still no second check-in. The next day: checked in."""
    from gateway.readers.mac.store import PresenceStore

    path = tmp_path / "presence.sqlite"
    store = PresenceStore(path)
    await store.open()
    p = make(tokens, clock)
    p.observe(seen(LAPTOP))
    clock.advance(AWAY)
    assert p.sweep() == [departed(LAPTOP, ALICE, LAPTOP)]
    changes = p.take_changes()
    assert changes.checkouts == [(ALICE.id, "2030-03-01")]
    await store.save(changes)
    await store.aclose()

    again = PresenceStore(path)
    devices, stays = await again.open()
    assert again.checkouts == {ALICE.id: "2030-03-01"}
    await again.aclose()
    q = make(tokens, clock)
    q.restore(devices, stays, again.checkouts)
    clock.advance(600)
    assert q.observe(seen(LAPTOP)) is None
    assert q.present_members() == {ALICE.id: frozenset({LAPTOP})}
    r = make(tokens, clock)
    r.restore(devices, stays, again.checkouts)
    clock.advance(86400)
    assert r.observe(seen(LAPTOP)) == arrived(LAPTOP, ALICE, LAPTOP)


def test_a_failed_save_of_a_checkout_is_tried_again(tokens: Tokens, clock: FakeClock) -> None:
    p = make(tokens, clock)
    p.observe(seen(LAPTOP))
    clock.advance(AWAY)
    p.sweep()
    changes = p.take_changes()
    assert p.take_changes().checkouts == []
    p.requeue(changes)
    assert p.take_changes().checkouts == [(ALICE.id, "2030-03-01")]
