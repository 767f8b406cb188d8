"""The frame parser, checked against frames scapy builds.

Each frame is one datagram off the packet socket, so "several frames per chunk" and
"byte by byte" have no meaning here; what does is every truncation (a snap length, a
short read), trailing bytes (Ethernet pads short frames to 60 bytes), and arbitrary
bytes, none of which may raise.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP, IPOption_EOL, IPOption_NOP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw

from gateway.readers.mac.packets import MAX_HOSTNAME, DeviceSighting, Source, parse_frame

MAC = "00:16:3e:12:34:56"
CHADDR = bytes.fromhex(MAC.replace(":", ""))


def dhcp(
    kind: str | None = "discover",
    *,
    mac: str = MAC,
    op: int = 1,
    ciaddr: str = "0.0.0.0",
    options: list[object] | None = None,
    sport: int = 68,
    dport: int = 67,
    ip: IP | None = None,
) -> bytes:
    opts: list[object] = [("message-type", kind)] if kind else []
    opts += [*(options or []), "end"]
    bootp = BOOTP(op=op, chaddr=bytes.fromhex(mac.replace(":", "")), ciaddr=ciaddr, xid=42)
    return bytes(
        Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
        / (ip or IP(src="0.0.0.0", dst="255.255.255.255"))
        / UDP(sport=sport, dport=dport)
        / bootp
        / DHCP(options=opts)
    )


def arp(op: int = 1, *, hwsrc: str = MAC, psrc: str = "10.0.0.7", **kw: object) -> bytes:
    return bytes(
        Ether(src=hwsrc, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=op, hwsrc=hwsrc, psrc=psrc, pdst="10.0.0.1", **kw)
    )


# -- DHCP ------------------------------------------------------------------------------


def test_discover_with_hostname_client_id_and_requested_address() -> None:
    frame = dhcp(
        "discover",
        options=[
            ("requested_addr", "10.0.0.23"),
            ("hostname", b"alice-laptop"),
            ("client_id", b"\x01" + CHADDR),
        ],
    )
    assert parse_frame(frame) == DeviceSighting(
        MAC,
        Source.DHCP,
        ip="10.0.0.23",
        hostname="alice-laptop",
        client_id="01" + CHADDR.hex(),
    )


@pytest.mark.parametrize("kind", ["discover", "request", "inform", None])
def test_client_messages_are_sightings(kind: str | None) -> None:
    assert parse_frame(dhcp(kind)) == DeviceSighting(MAC, Source.DHCP)


def test_renewal_names_the_client_address() -> None:
    frame = dhcp("request", ciaddr="10.0.0.5", options=[("requested_addr", "10.0.0.9")])
    sighting = parse_frame(frame)
    assert sighting is not None
    assert sighting.ip == "10.0.0.5"  # ciaddr wins: the address in use


@pytest.mark.parametrize("kind", ["offer", "ack", "nak", "release", "decline"])
def test_server_replies_and_goodbyes_are_not_sightings(kind: str) -> None:
    op = 2 if kind in ("offer", "ack", "nak") else 1
    assert parse_frame(dhcp(kind, op=op, sport=67, dport=68 if op == 2 else 67)) is None


def test_reply_op_is_ignored_even_on_the_server_port() -> None:
    assert parse_frame(dhcp("discover", op=2)) is None


def test_relayed_request_counts_chaddr_not_the_relay() -> None:
    frame = dhcp("request", sport=67, ip=IP(src="10.9.0.1", dst="10.0.0.1"))
    assert parse_frame(frame) == DeviceSighting(MAC, Source.DHCP)


def test_client_port_traffic_is_not_a_sighting() -> None:
    assert parse_frame(dhcp("discover", dport=68)) is None


@pytest.mark.parametrize("mac", ["ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "00:00:00:00:00:00"])
def test_impossible_client_addresses(mac: str) -> None:
    assert parse_frame(dhcp("discover", mac=mac)) is None
    assert parse_frame(arp(hwsrc=mac)) is None


def test_wrong_magic_cookie() -> None:
    frame = bytearray(dhcp())
    frame[14 + 20 + 8 + 236] ^= 0xFF
    assert parse_frame(bytes(frame)) is None


def test_non_ethernet_hardware_type() -> None:
    frame = bytes(Ether() / IP() / UDP(sport=68, dport=67) / BOOTP(htype=6, chaddr=CHADDR) / DHCP())
    assert parse_frame(frame) is None


def test_ip_options_move_the_udp_header() -> None:
    ip = IP(src="0.0.0.0", dst="255.255.255.255", options=[IPOption_NOP()] * 3 + [IPOption_EOL()])
    frame = dhcp("discover", ip=ip, options=[("hostname", b"x")])
    assert frame[14] & 0x0F == 6
    assert parse_frame(frame) == DeviceSighting(MAC, Source.DHCP, hostname="x")


def test_later_fragments_are_skipped_first_fragment_parsed() -> None:
    later = dhcp(ip=IP(src="0.0.0.0", dst="255.255.255.255", frag=10))
    first = dhcp(ip=IP(src="0.0.0.0", dst="255.255.255.255", flags="MF"))
    assert parse_frame(later) is None
    assert parse_frame(first) == DeviceSighting(MAC, Source.DHCP)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"alice\x00garbage", "alice"),  # NUL-terminated by some clients
        (b"bob\x07\x1b[31m", "bob[31m"),  # control characters dropped (log injection)
        ("zoë".encode(), "zoë"),
        (b"caf\xe9", "café"),  # Latin-1 keeps its characters
        (b"Jos\xe9-M\xfcller", "José-Müller"),
        (b"\x85\x9bx", "x"),  # C1 controls (Latin-1 0x80-0x9f) dropped
        (b"x" * 200, "x" * MAX_HOSTNAME),
        (b"\x00\x00", None),
        (b"   ", None),
    ],
)
def test_hostnames_are_sanitised(raw: bytes, expected: str | None) -> None:
    sighting = parse_frame(dhcp(options=[("hostname", raw)]))
    assert sighting is not None
    assert sighting.hostname == expected


def test_long_option_split_in_two_is_joined() -> None:
    """RFC 3396: an option given twice is one value."""
    sighting = parse_frame(dhcp(options=[("hostname", b"alice-"), ("hostname", b"laptop")]))
    assert sighting is not None
    assert sighting.hostname == "alice-laptop"


def test_truncated_option_keeps_what_came_before() -> None:
    frame = dhcp(options=[("hostname", b"alice")])[:-1]  # drop 'end'
    frame += bytes([61, 200, 1, 2])  # client id claiming 200 bytes; 2 present
    sighting = parse_frame(frame)
    assert sighting == DeviceSighting(MAC, Source.DHCP, hostname="alice")


def test_udp_length_bounds_the_options() -> None:
    """Bytes after the UDP datagram (Ethernet padding) are not options."""
    frame = dhcp(options=[])[:-1]  # ends right after the message-type option, no 'end'
    padded = frame + bytes([12, 3]) + b"eve"
    assert parse_frame(padded) == DeviceSighting(MAC, Source.DHCP)


def test_ipv6_udp_on_dhcp_ports_is_not_a_sighting() -> None:
    frame = bytes(Ether(src=MAC) / IPv6() / UDP(sport=68, dport=67) / Raw(b"\x00" * 300))
    assert parse_frame(frame) is None


# -- ARP -------------------------------------------------------------------------------


@pytest.mark.parametrize("op", [1, 2])
def test_arp_request_and_reply(op: int) -> None:
    assert parse_frame(arp(op)) == DeviceSighting(MAC, Source.ARP, ip="10.0.0.7")


def test_arp_probe_has_no_address_yet() -> None:
    assert parse_frame(arp(psrc="0.0.0.0")) == DeviceSighting(MAC, Source.ARP)


def test_arp_sender_not_ethernet_source() -> None:
    """The ARP sender field names the device (a bridge may rewrite the frame's source)."""
    frame = bytes(Ether(src="00:11:11:11:11:11") / ARP(hwsrc=MAC, psrc="10.0.0.7"))
    assert parse_frame(frame) == DeviceSighting(MAC, Source.ARP, ip="10.0.0.7")


@pytest.mark.parametrize(
    "packet",
    [
        ARP(op=3, hwsrc=MAC),  # RARP request
        ARP(hwtype=6, hwsrc=MAC),
        ARP(ptype=0x86DD, hwsrc=MAC),
    ],
)
def test_other_arp_is_not_a_sighting(packet: Packet) -> None:
    assert parse_frame(bytes(Ether(src=MAC) / packet)) is None


def test_vlan_tagged_frames_are_not_parsed() -> None:
    """The kernel filter drops them too; a LAN bridge delivers untagged frames."""
    assert parse_frame(bytes(Ether(src=MAC) / Dot1Q(vlan=5) / ARP(hwsrc=MAC))) is None


# -- robustness --------------------------------------------------------------------------

VALID = [
    dhcp(options=[("hostname", b"alice"), ("client_id", b"\x01" + CHADDR)]),
    dhcp("request", ciaddr="10.0.0.5"),
    arp(),
]


@pytest.mark.parametrize("frame", VALID)
def test_every_truncation_is_safe(frame: bytes) -> None:
    whole = parse_frame(frame)
    assert whole is not None
    for cut in range(len(frame)):
        got = parse_frame(frame[:cut])
        # A cut frame either shows nothing or the same device (options may be lost).
        assert got is None or (got.mac, got.source) == (whole.mac, whole.source)
    assert parse_frame(frame[:14]) is None


@given(frame=st.sampled_from(VALID), tail=st.binary(max_size=64))
def test_trailing_bytes_do_not_change_the_sighting(frame: bytes, tail: bytes) -> None:
    assert parse_frame(frame + tail) == parse_frame(frame)


@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    parse_frame(data)


@given(
    ethertype=st.sampled_from([b"\x08\x00", b"\x08\x06"]),
    body=st.binary(max_size=600),
)
def test_arbitrary_arp_and_ipv4_bodies_never_raise(ethertype: bytes, body: bytes) -> None:
    parse_frame(b"\xff" * 6 + CHADDR + ethertype + body)


@given(
    prefix=st.sampled_from([v[: 14 + 20 + 8 + 240] for v in VALID[:2]]),
    options=st.binary(max_size=300),
)
def test_arbitrary_dhcp_options_never_raise(prefix: bytes, options: bytes) -> None:
    got = parse_frame(prefix + options)
    assert got is None or got.mac == MAC


@settings(max_examples=200)
@given(
    mac=st.binary(min_size=6, max_size=6).filter(lambda b: not b[0] & 1 and any(b)),
    kind=st.sampled_from(["discover", "request", "inform"]),
    hostname=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
    ),
    requested=st.ip_addresses(v=4).filter(lambda a: a != ipaddress.IPv4Address(0)),
    client_id=st.binary(min_size=2, max_size=20),
)
def test_matches_scapy(
    mac: bytes,
    kind: str,
    hostname: str,
    requested: ipaddress.IPv4Address,
    client_id: bytes,
) -> None:
    text = mac.hex(":")
    frame = dhcp(
        kind,
        mac=text,
        options=[
            ("requested_addr", str(requested)),
            ("hostname", hostname.encode()),
            ("client_id", client_id),
        ],
    )
    decoded = Ether(frame)
    assert decoded[BOOTP].chaddr[:6] == mac  # scapy reads back what it built
    assert parse_frame(frame) == DeviceSighting(
        text, Source.DHCP, ip=str(requested), hostname=hostname, client_id=client_id.hex()
    )


# -- option overload (RFC 2131 4.1, RFC 2132 9.3) -----------------------------------------


def overloaded(
    overload: int,
    *,
    options: bytes = b"",
    file: bytes = b"",
    sname: bytes = b"",
    mac: str = MAC,
) -> bytes:
    """A BOOTREQUEST whose options field holds ``options`` and option 52, and whose
    ``file``/``sname`` fields hold the given option bytes (zero-padded, as on the wire)."""
    bootp = BOOTP(
        op=1,
        chaddr=bytes.fromhex(mac.replace(":", "")),
        xid=7,
        file=file.ljust(128, b"\x00"),
        sname=sname.ljust(64, b"\x00"),
    )
    body = bytes(bootp) + b"\x63\x82\x53\x63" + options + bytes([52, 1, overload, 255])
    return bytes(
        Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / Raw(body)
    )


RELEASE_TYPE = bytes([53, 1, 7, 255])
DISCOVER_TYPE = bytes([53, 1, 1])


def test_release_with_its_message_type_in_file_is_not_a_sighting() -> None:
    frame = overloaded(1, file=RELEASE_TYPE)
    assert frame[14 + 20 + 8 + 240 :].startswith(bytes([52, 1, 1]))  # really in `file`
    assert parse_frame(frame) is None


def test_release_with_its_message_type_in_sname_is_not_a_sighting() -> None:
    assert parse_frame(overloaded(2, sname=RELEASE_TYPE)) is None


def test_hostname_in_file_is_the_hostname() -> None:
    file = DISCOVER_TYPE + bytes([12, 11]) + b"alice-phone" + bytes([255])
    assert parse_frame(overloaded(1, file=file)) == DeviceSighting(
        MAC, Source.DHCP, hostname="alice-phone"
    )


def test_both_fields_read_file_before_sname() -> None:
    """RFC 3396: a value split over the fields is joined in the order options, file,
    sname."""
    file = bytes([12, 6]) + b"alice-" + bytes([255])
    sname = bytes([12, 6]) + b"laptop" + bytes([61, 3, 1, 0xAB, 0xCD, 255])
    frame = overloaded(3, options=DISCOVER_TYPE, file=file, sname=sname)
    assert parse_frame(frame) == DeviceSighting(
        MAC, Source.DHCP, hostname="alice-laptop", client_id="01abcd"
    )


def test_without_overload_file_and_sname_are_not_options() -> None:
    """A boot file name that happens to look like options is a file name."""
    bootp = BOOTP(op=1, chaddr=CHADDR, xid=7, file=RELEASE_TYPE.ljust(128, b"\x00"))
    frame = bytes(
        Ether(src=MAC, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / bootp
        / DHCP(options=[("message-type", "discover"), "end"])
    )
    assert parse_frame(frame) == DeviceSighting(MAC, Source.DHCP)


def test_overload_named_inside_file_does_not_chain() -> None:
    """Option 52 counts only in the options field (RFC 2131 4.1)."""
    file = bytes([52, 1, 2]) + DISCOVER_TYPE + bytes([255])
    frame = overloaded(1, file=file, sname=RELEASE_TYPE)
    assert parse_frame(frame) == DeviceSighting(MAC, Source.DHCP)


def test_scapy_reads_the_same_overloaded_release() -> None:
    """Cross-check with scapy's own dissector: the release is where we say it is."""
    frame = overloaded(1, file=RELEASE_TYPE)
    dissected = Ether(frame)
    assert dissected[BOOTP].file.startswith(RELEASE_TYPE)
    assert ("message-type", 7) not in (dissected[DHCP].options or [])
