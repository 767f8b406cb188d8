"""The kernel filter program, run here by a small classic-BPF interpreter (the opcodes
``tcpdump -dd`` emits for it), so that what it accepts is checked without a kernel;
``test_mac_netns.py`` checks the same against the real kernel."""

from __future__ import annotations

import socket
import struct

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, LLC, Dot1Q, Ether
from scapy.packet import Raw

from gateway.readers.mac.bpf import FILTER, SKF_AD_VLAN_TAG_PRESENT, SNAPLEN, attach_filter


def run_bpf(
    program: tuple[tuple[int, int, int, int], ...], pkt: bytes, *, vlan_stripped: bool = False
) -> int:
    """Returns the number of bytes accepted (0: dropped). Out-of-bounds loads drop the
    packet, as in the kernel. ``vlan_stripped``: the driver took a VLAN tag off."""
    a = x = 0
    pc = 0

    def load(offset: int, size: int) -> int | None:
        if offset < 0 or offset + size > len(pkt):
            return None
        return int.from_bytes(pkt[offset : offset + size], "big")

    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x30 and k == SKF_AD_VLAN_TAG_PRESENT & 0xFFFFFFFF:  # ldb [vlanp]
            a = int(vlan_stripped)
        elif code in (0x28, 0x30, 0x48):  # ldh [k], ldb [k], ldh [x+k]
            size = 2 if code in (0x28, 0x48) else 1
            value = load(k + (x if code == 0x48 else 0), size)
            if value is None:
                return 0
            a = value
        elif code == 0xB1:  # ldxb 4*([k]&0xf)
            value = load(k, 1)
            if value is None:
                return 0
            x = (value & 0x0F) * 4
        elif code == 0x15:  # jeq #k
            pc += jt if a == k else jf
        elif code == 0x45:  # jset #k
            pc += jt if a & k else jf
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"opcode {code:#x} not expected in this program")


BCAST = "ff:ff:ff:ff:ff:ff"
ACCEPTED = {
    "arp request": Ether(dst=BCAST) / ARP(),
    "arp reply": Ether() / ARP(op=2),
    "dhcp discover": Ether(dst=BCAST) / IP() / UDP(sport=68, dport=67) / BOOTP() / DHCP(),
    "dhcp offer": Ether() / IP() / UDP(sport=67, dport=68) / BOOTP(op=2) / DHCP(),
    "ip options": Ether() / IP(options=[Raw(b"\x01\x01\x01\x00")]) / UDP(sport=68, dport=67),
    "ipv6 udp 67": Ether() / IPv6() / UDP(sport=1000, dport=67),
}
DROPPED = {
    "dns": Ether() / IP() / UDP(sport=5353, dport=53),
    "tcp 67": Ether() / IP() / TCP(sport=67, dport=67),
    "icmp": Ether() / IP() / ICMP(),
    "ipv6 dhcpv6": Ether() / IPv6() / UDP(sport=546, dport=547),
    "later fragment": Ether() / IP(frag=3, proto=17) / Raw(b"\x00\x44\x00\x43" + b"\x00" * 8),
    "vlan arp": Ether() / Dot1Q(vlan=2) / ARP(),
    "qinq arp": Ether(type=0x88A8) / Dot1Q(vlan=2) / ARP(),
    "llc": Ether(dst="01:80:c2:00:00:00") / LLC() / Raw(b"\x00" * 40),
    "truncated": Ether(type=0x0800) / Raw(b"\x45\x00"),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_accepts(name: str) -> None:
    assert run_bpf(FILTER, bytes(ACCEPTED[name])) == SNAPLEN


@pytest.mark.parametrize("name", list(DROPPED))
def test_drops(name: str) -> None:
    assert run_bpf(FILTER, bytes(DROPPED[name])) == 0


@pytest.mark.parametrize("name", ["arp request", "dhcp discover"])
def test_drops_frames_whose_vlan_tag_the_driver_stripped(name: str) -> None:
    assert run_bpf(FILTER, bytes(ACCEPTED[name]), vlan_stripped=True) == 0


def test_jumps_stay_inside_the_program() -> None:
    for pc, (code, jt, jf, _k) in enumerate(FILTER):
        if code in (0x15, 0x45):
            assert pc + 1 + max(jt, jf) < len(FILTER)
    assert FILTER[-1] == (0x06, 0, 0, 0)


def test_the_kernel_accepts_the_program() -> None:
    """SO_ATTACH_FILTER validates the program (and our sock_fprog layout) on any socket
    type; a UDP socket needs no privilege."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        attach_filter(sock, FILTER)
        with pytest.raises(OSError, match="Invalid argument"):
            attach_filter(sock, ((0xFFFF, 0, 0, 0),))  # no such opcode


def test_instruction_layout() -> None:
    assert struct.calcsize("HBBI") == 8  # struct sock_filter
