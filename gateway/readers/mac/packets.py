"""Frames -> sightings: which device (MAC) spoke, by ARP or by DHCP, and what it said.

A hand-written parser over the few fixed layouts involved (Ethernet II, ARP for IPv4,
IPv4 + UDP + BOOTP/DHCP options). It replaces scapy's dissectors here because it is
about 40 times faster (see ``bench/bench_mac.py``) and keeps scapy's ~45 MiB of layers
out of the daemon; the tests check it against frames scapy builds.

Only what a *client* says counts: ARP (request, reply, probe or announcement: its
sender is on the LAN) and BOOTREQUESTs of kind DISCOVER, REQUEST or INFORM. A server's
OFFER/ACK names a client but was not sent by it, and a RELEASE/DECLINE says the device
is leaving. Each frame is one datagram from the packet socket, so there is no stream to
resynchronise: anything malformed yields ``None``, never an exception.

Options are read where RFC 2131 section 4.1 allows them: the options field, then, when
option 52 ("option overload") says so, the ``file`` field and then the ``sname`` field.
A client that moves its message type or hostname there is read the same as one that
does not.
"""

from __future__ import annotations

import enum
import socket
import struct
from dataclasses import dataclass

from gateway.readers.mac.address import is_device_address


class Source(enum.StrEnum):
    ARP = "arp"
    DHCP = "dhcp"


@dataclass(frozen=True, slots=True)
class DeviceSighting:
    """One device heard once. ``mac`` is canonical (``aa:bb:cc:dd:ee:ff``)."""

    mac: str
    source: Source
    ip: str | None = None  # ARP sender address; DHCP client or requested address
    hostname: str | None = None  # DHCP option 12, sanitised
    client_id: str | None = None  # DHCP option 61, hex (type byte first)


ETH_HEADER = 14
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
_ETHERTYPE = struct.Struct("!H")
# htype, ptype, hlen, plen, oper, sha, spa (tha/tpa follow; not needed)
_ARP = struct.Struct("!HHBBH6s4s")
_ARP_LEN = 28
_UDP = struct.Struct("!HHH")  # sport, dport, length (checksum not needed)
# op, htype, hlen, (hops, xid, secs, flags), ciaddr, (yiaddr, siaddr, giaddr), chaddr
_BOOTP = struct.Struct("!BBB9x4s12x6s")
_BOOTP_FIXED = 236  # up to and including sname and file
_SNAME = (44, 108)  # offsets in the BOOTP message (RFC 2131 figure 1)
_FILE = (108, 236)
_MAGIC = b"\x63\x82\x53\x63"
_BOOTREQUEST = 1
_HTYPE_ETHERNET = 1
_PORT_SERVER = 67

_OPT_PAD, _OPT_END = 0, 255
_OPT_HOSTNAME, _OPT_REQUESTED_IP, _OPT_MESSAGE_TYPE, _OPT_CLIENT_ID = 12, 50, 53, 61
_OPT_OVERLOAD = 52  # RFC 2132 9.3: 1 = file holds options, 2 = sname, 3 = both
_OVERLOAD_FILE, _OVERLOAD_SNAME = 1, 2
_CLIENT_MESSAGES = frozenset({1, 3, 8})  # DISCOVER, REQUEST, INFORM
MAX_HOSTNAME = 63
_NO_IP = b"\x00\x00\x00\x00"


def parse_frame(frame: bytes) -> DeviceSighting | None:
    """The sighting in an Ethernet frame, or ``None`` if it does not show a client."""
    try:
        (ethertype,) = _ETHERTYPE.unpack_from(frame, 12)
        if ethertype == ETHERTYPE_ARP:
            return _parse_arp(frame)
        if ethertype == ETHERTYPE_IPV4:
            return _parse_ipv4(frame)
    except (struct.error, IndexError, ValueError):
        return None  # truncated: the length checks below are the first line, this the net
    return None


def _parse_arp(frame: bytes) -> DeviceSighting | None:
    if len(frame) < ETH_HEADER + _ARP_LEN:
        return None
    htype, ptype, hlen, plen, oper, sha, spa = _ARP.unpack_from(frame, ETH_HEADER)
    if (htype, ptype, hlen, plen) != (1, ETHERTYPE_IPV4, 6, 4) or oper not in (1, 2):
        return None
    mac = sha.hex(":")
    if not is_device_address(mac):
        return None
    return DeviceSighting(mac, Source.ARP, ip=_ip(spa))


def _parse_ipv4(frame: bytes) -> DeviceSighting | None:
    n = len(frame)
    if n < ETH_HEADER + 20:
        return None
    version_ihl = frame[ETH_HEADER]
    ihl = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or ihl < 20 or frame[ETH_HEADER + 9] != 17:
        return None
    if frame[ETH_HEADER + 6] & 0x1F or frame[ETH_HEADER + 7]:  # a later fragment
        return None
    udp = ETH_HEADER + ihl
    if n < udp + 8:
        return None
    _sport, dport, udp_len = _UDP.unpack_from(frame, udp)
    if dport != _PORT_SERVER:
        return None
    bootp = udp + 8
    end = min(n, udp + udp_len) if udp_len >= 8 else n
    if end < bootp + _BOOTP_FIXED + 4 or frame[bootp + 236 : bootp + 240] != _MAGIC:
        return None
    op, htype, hlen, ciaddr, chaddr = _BOOTP.unpack_from(frame, bootp)
    if op != _BOOTREQUEST or htype != _HTYPE_ETHERNET or hlen != 6:
        return None
    mac = chaddr.hex(":")
    if not is_device_address(mac):
        return None
    options = _all_options(frame, bootp, end)
    kind = options.get(_OPT_MESSAGE_TYPE)
    if kind is not None and (len(kind) != 1 or kind[0] not in _CLIENT_MESSAGES):
        return None
    requested = options.get(_OPT_REQUESTED_IP)
    ip = _ip(ciaddr) or (_ip(requested) if requested is not None and len(requested) == 4 else None)
    hostname = options.get(_OPT_HOSTNAME)
    client_id = options.get(_OPT_CLIENT_ID)
    return DeviceSighting(
        mac,
        Source.DHCP,
        ip=ip,
        hostname=_hostname(hostname) if hostname else None,
        client_id=client_id.hex() if client_id else None,
    )


_WANTED = frozenset(
    {_OPT_HOSTNAME, _OPT_REQUESTED_IP, _OPT_MESSAGE_TYPE, _OPT_CLIENT_ID, _OPT_OVERLOAD}
)


def _all_options(frame: bytes, bootp: int, end: int) -> dict[int, bytes]:
    """The wanted options of the BOOTP message at ``bootp``: the options field, then
    ``file`` and ``sname`` if option 52 names them, in that order (RFC 2131 4.1, RFC 3396
    for values split across them). Option 52 itself counts only in the options field."""
    found = _options(frame, bootp + 240, end, {})
    overload = found.pop(_OPT_OVERLOAD, b"")
    flags = overload[0] if len(overload) == 1 else 0
    for bit, (start, stop) in ((_OVERLOAD_FILE, _FILE), (_OVERLOAD_SNAME, _SNAME)):
        if flags & bit:
            found = _options(frame, bootp + start, min(end, bootp + stop), found)
            found.pop(_OPT_OVERLOAD, None)
    return found


def _options(frame: bytes, pos: int, end: int, found: dict[int, bytes]) -> dict[int, bytes]:
    """Adds the wanted DHCP options in ``frame[pos:end]`` to ``found``; a truncated
    option ends the walk (what came before counts). An option given twice is
    concatenated, as RFC 3396 says for long options."""
    while pos < end:
        code = frame[pos]
        if code == _OPT_END:
            break
        if code == _OPT_PAD:
            pos += 1
            continue
        if pos + 1 >= end:
            break
        length = frame[pos + 1]
        value_end = pos + 2 + length
        if value_end > end:
            break
        if code in _WANTED:
            found[code] = found.get(code, b"") + frame[pos + 2 : value_end]
        pos = value_end
    return found


def _ip(raw: bytes) -> str | None:
    return None if raw == _NO_IP else socket.inet_ntoa(raw)


def _hostname(raw: bytes) -> str | None:
    """Clients send anything here (NUL-terminated, UTF-8, Latin-1): keep what prints.
    Bytes that are not UTF-8 are read as Latin-1 (every byte is a character there), so
    ``caf\\xe9`` is "café", not a replacement character."""
    name = raw.split(b"\x00", 1)[0]
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        text = name.decode("latin-1")
    clean = "".join(c for c in text if c.isprintable()).strip()[:MAX_HOSTNAME]
    return clean or None
