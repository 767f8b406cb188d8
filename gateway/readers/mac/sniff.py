"""The packet socket: listens on one interface, never transmits (the only frames the
reader sends are ``confirm.py``'s departure checks, on a socket of their own).

An ``AF_PACKET`` raw socket with the BPF program of ``bpf.py`` attached, read from the
event loop with ``add_reader`` (no sniffer thread, no libpcap). Each wake-up drains up
to ``MAX_BATCH`` frames, so a burst cannot starve the rest of the gateway; the loop calls
again while frames remain. Frames this host sends (``PACKET_OUTGOING``), e.g. a DHCP
server's replies when the gateway is the router, are skipped.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from gateway.readers.mac.bpf import FILTER, SNAPLEN, attach_filter
from gateway.readers.mac.packets import DeviceSighting, parse_frame

log = structlog.get_logger(__name__)

ETH_P_ALL = 0x0003
ARPHRD_ETHER = 1  # Ethernet, and Wi-Fi in managed or AP mode (not monitor mode)
PACKET_OUTGOING = 4
MAX_BATCH = 256
# Room for a burst (a class of laptops joining at nine) while the loop is busy elsewhere.
RCVBUF = 1 << 20

Opener = Callable[[str], socket.socket]


class NotEthernetError(OSError):
    """The interface does not carry Ethernet frames (monitor mode, tun, loopback)."""


def open_packet_socket(interface: str) -> socket.socket:
    """A non-blocking packet socket on ``interface``, filtered to ARP and DHCP.

    Created with protocol 0, so it receives nothing until ``bind`` names the protocol:
    by then the filter is attached and no unfiltered frame can slip in. Raises
    ``PermissionError`` without CAP_NET_RAW, ``OSError(ENODEV)`` if the interface does
    not exist, ``NotEthernetError`` if it is not Ethernet-like.
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        attach_filter(sock, FILTER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind((interface, ETH_P_ALL))
        _require_ethernet(sock, interface)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _require_ethernet(sock: socket.socket, interface: str) -> None:
    hatype = sock.getsockname()[3]
    if hatype != ARPHRD_ETHER:
        raise NotEthernetError(f"{interface} is not an Ethernet interface (ARPHRD {hatype})")


@dataclass(slots=True)
class Counters:
    """What came through the kernel filter, for the benchmark and for diagnostics."""

    frames: int = 0  # received and not our own
    outgoing: int = 0  # sent by this host: skipped
    sightings: int = 0
    ignored: int = 0  # passed the filter but show no client (server replies, junk)
    failed: int = 0  # the handler raised (a bug): logged with its traceback


class Sniffer:
    """Reads ``sock`` from the event loop until the link fails or the task is cancelled."""

    def __init__(
        self,
        sock: socket.socket,
        on_sighting: Callable[[DeviceSighting], None],
        counters: Counters,
        *,
        reader: str,
    ) -> None:
        self._sock = sock
        self._on_sighting = on_sighting
        self._counters = counters
        self._log = log.bind(reader=reader)
        self._lost: asyncio.Future[OSError] | None = None

    async def run(self) -> OSError:
        """Returns the error that ended the link (e.g. ENETDOWN: interface down or gone)."""
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        fd = self._sock.fileno()
        loop.add_reader(fd, self._drain)
        try:
            return await self._lost
        finally:
            loop.remove_reader(fd)

    def _drain(self) -> None:
        counters = self._counters
        for _ in range(MAX_BATCH):
            try:
                frame, address = self._sock.recvfrom(SNAPLEN)
            except BlockingIOError:
                return
            except OSError as exc:
                if self._lost is not None and not self._lost.done():
                    self._lost.set_result(exc)
                return
            if address[2] == PACKET_OUTGOING:
                counters.outgoing += 1
                continue
            counters.frames += 1
            sighting = parse_frame(frame)
            if sighting is None:
                counters.ignored += 1
                continue
            counters.sightings += 1
            try:
                self._on_sighting(sighting)
            except Exception:  # noqa: BLE001 - one bad frame must not stop the reader
                counters.failed += 1
                self._log.exception("mac_sighting_failed")
