"""Issue 12 case 5: the departure probe on bytes and its failures. The presence rules
that use it are in tests/test_mac_presence.py; real packets in tests/test_mac_netns.py."""

from __future__ import annotations

import pytest
from scapy.layers.l2 import ARP, Ether
from structlog.testing import capture_logs

from gateway.readers.mac.confirm import ArpConfirmer, arp_request
from tests.test_mac_presence import LAPTOP

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
