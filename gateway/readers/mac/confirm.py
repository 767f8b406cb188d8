"""Before a silent device counts as gone, ask it: one unicast ARP request.

A phone asleep on Wi-Fi can stay silent on ARP and DHCP for more than half an hour
while its owner sits at their desk, but it still answers an ARP request addressed to it
(the Wi-Fi chip wakes the host for unicast frames to it, or the access point answers
for it from its proxy-ARP table). So when ``presence.DevicePresence.sweep`` finds a
registered device silent for ``away_after``, it calls ``ArpConfirmer.probe``: a
who-has for the device's last known IPv4 address, sent to its MAC alone (never
broadcast). The answer is an ordinary ARP reply, which the reader's own packet socket
hears as a sighting of that device; no answer within ``presence.CONFIRM_WAIT`` seconds
confirms the departure.

These frames are the only ones the gateway ever transmits on the interface: at most
one request per registered device per ``away_after`` of silence. Sending needs the
same CAP_NET_RAW as listening.

Limits (also in the README): a device with no known IPv4 address (IPv6 only, or never
heard by DHCP or ARP with an address) cannot be asked and leaves on silence alone; a
device that changed its private (randomised) address, or an access point with client
isolation that drops the request, does not answer and is taken as gone; an access point
that answers ARP for a client that has left (a stale proxy-ARP entry) keeps it "here"
until the AP forgets it.

Wire format: RFC 826 (ARP), Ethernet II; sender protocol address 0.0.0.0 when the
interface has no IPv4 address (the RFC 5227 probe form, which hosts also answer).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from gateway.readers.mac.packets import ETHERTYPE_ARP, ETHERTYPE_IPV4
from gateway.redact import redact

log = structlog.get_logger(__name__)

_ARP_REQUEST = 1
_SIOCGIFADDR = 0x8915
_NO_IP = b"\x00\x00\x00\x00"
_ZERO_MAC = b"\x00" * 6
_MIN_FRAME = 60  # Ethernet minimum without the FCS: the kernel pads short frames anyway
# Seconds an asked device has to answer before it counts as gone. Sleeping phones answer
# in well under a second; the sweep runs every few seconds anyway.
CONFIRM_WAIT = 5.0


class Confirmer(Protocol):
    def probe(self, mac: str, ip: str) -> bool:
        """Ask ``mac`` at ``ip`` whether it is still here; False if it cannot be asked.
        The answer comes back as an ordinary sighting (``DevicePresence.observe``)."""
        ...


class Asking:
    """Which silent devices have been asked, since when (monotonic seconds), and how it
    went. Pure: sending is the ``Confirmer``'s; hearing the answer is the sniffer's."""

    def __init__(
        self, confirmer: Confirmer | None, *, wait: float = CONFIRM_WAIT, reader: str = ""
    ) -> None:
        self._confirmer = confirmer
        self._wait = wait
        self._asked: dict[str, float] = {}
        self._log = log.bind(reader=reader)
        self.answered = 0  # departures averted: the device answered
        self.unanswered = 0  # departures confirmed: asked, and no answer within ``wait``

    def heard(self, mac: str) -> None:
        """``mac`` spoke: if it was being asked, that was its answer."""
        if self._asked.pop(mac, None) is not None:
            self.answered += 1
            self._log.info("mac_device_answered_probe", mac=redact(mac))

    def still_asking(self, mac: str, ip: str | None, now: float) -> bool:
        """For a device silent for ``away_after``: True while it is given its chance to
        answer (asked now, or less than ``wait`` ago); False when it counts as gone (no
        answer in time, no address to ask, or the request could not be sent)."""
        asked = self._asked.get(mac)
        if asked is not None:
            if now - asked < self._wait:
                return True
            del self._asked[mac]
            self.unanswered += 1
            self._log.info("mac_device_did_not_answer", mac=redact(mac))
            return False
        if self._confirmer is None or ip is None or not self._confirmer.probe(mac, ip):
            return False
        self._asked[mac] = now
        return True

    def forget(self, mac: str) -> None:
        self._asked.pop(mac, None)

    def __len__(self) -> int:
        return len(self._asked)


def arp_request(
    *, sender_mac: bytes, sender_ip: bytes, target_mac: bytes, target_ip: bytes
) -> bytes:
    """An Ethernet II frame carrying an ARP who-has ``target_ip``, addressed to
    ``target_mac`` only (unicast). Addresses are raw bytes (6 for MACs, 4 for IPv4)."""
    if len(sender_mac) != 6 or len(target_mac) != 6:
        raise ValueError("MAC addresses are 6 bytes")
    if len(sender_ip) != 4 or len(target_ip) != 4:
        raise ValueError("IPv4 addresses are 4 bytes")
    ethernet = target_mac + sender_mac + struct.pack("!H", ETHERTYPE_ARP)
    arp = struct.pack("!HHBBH", 1, ETHERTYPE_IPV4, 6, 4, _ARP_REQUEST)
    arp += sender_mac + sender_ip + _ZERO_MAC + target_ip
    return (ethernet + arp).ljust(_MIN_FRAME, b"\x00")


@dataclass(frozen=True, slots=True)
class Link:
    """A sending socket on the interface and what we say about ourselves on it."""

    sock: socket.socket
    mac: bytes
    ipv4: bytes  # 0.0.0.0 when the interface has none


LinkOpener = Callable[[str], Link]


def open_link(interface: str) -> Link:
    """A packet socket for sending ARP on ``interface`` (bound to ETH_P_ARP, which the
    reader's filter already passes; it is only written to). Raises ``OSError``
    (PermissionError without CAP_NET_RAW, ENODEV without the interface)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # receives nothing
    try:
        sock.bind((interface, 0))
        sock.setblocking(False)
        mac = sock.getsockname()[4]
        return Link(sock, bytes(mac[:6]), _interface_ipv4(interface))
    except BaseException:
        sock.close()
        raise


def _interface_ipv4(interface: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            answer = fcntl.ioctl(
                s.fileno(), _SIOCGIFADDR, struct.pack("256s", interface.encode()[:15])
            )
        except OSError:  # EADDRNOTAVAIL: no IPv4 address on the interface
            return _NO_IP
    return answer[20:24]


class ArpConfirmer:
    """``Confirmer`` over a real interface: ``probe`` sends one request now."""

    def __init__(
        self, interface: str, *, opener: LinkOpener | None = None, reader: str = ""
    ) -> None:
        self._interface = interface
        self._opener = opener  # looked up at call time: tests open in their namespace
        self._log = log.bind(reader=reader)
        self._warned = False
        self.sent = 0
        self.failed = 0

    def probe(self, mac: str, ip: str) -> bool:
        """Send the request; False when it could not be sent (the caller then decides on
        silence alone). Never raises for network trouble."""
        try:
            target_ip = ipaddress.IPv4Address(ip).packed
            target_mac = bytes.fromhex(mac.replace(":", ""))
        except ValueError:
            return False
        try:
            link = (self._opener or open_link)(self._interface)
        except OSError as exc:
            return self._failed(mac, exc)
        with contextlib.closing(link.sock):
            frame = arp_request(
                sender_mac=link.mac, sender_ip=link.ipv4, target_mac=target_mac, target_ip=target_ip
            )
            try:
                link.sock.send(frame)
            except OSError as exc:
                return self._failed(mac, exc)
        self.sent += 1
        self._log.debug("mac_arp_probe_sent", mac=redact(mac))
        return True

    def _failed(self, mac: str, exc: OSError) -> bool:
        self.failed += 1
        level = self._log.debug if self._warned else self._log.warning
        level(
            "mac_arp_probe_failed",
            mac=redact(mac),
            interface=self._interface,
            error=exc.strerror or str(exc),
            effect="departure decided on silence alone",
        )
        self._warned = True
        return False
