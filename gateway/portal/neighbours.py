"""Which MAC address a client IP has: the kernel's neighbour table on the LAN interface.

A client that talks TCP to the portal is on the link (the firewall only redirects the
LAN interface), so the kernel has its neighbour entry: it needed it to answer. IPv4
entries come from ``/proc/net/arp`` (per network namespace, a few microseconds: the
probe path reads it often); IPv6 ones from ``ip -j neigh`` with a deadline. Lookups are
cached for a moment because an OS fires several probes at once.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from gateway.portal.command import run as run_command
from gateway.redact import redact

log = structlog.get_logger(__name__)

IP_COMMAND_TIMEOUT = 2.0  # seconds for one `ip neigh` run
CACHE_SECONDS = 2.0
_ARP_COMPLETE = 0x2  # ATF_COM: the entry has a hardware address
_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_NO_ADDRESS_STATES = frozenset({"FAILED", "INCOMPLETE", "NONE"})


@dataclass(frozen=True, slots=True)
class Neighbour:
    ip: str
    mac: str
    device: str


class NeighbourTable(Protocol):
    """IP -> MAC on the LAN, and back (for flushing a device's connections)."""

    async def mac_for(self, ip: str) -> str | None: ...

    async def addresses_of(self, mac: str) -> list[str]: ...


def canonical_ip(ip: str) -> str | None:
    """``"::ffff:10.0.0.2"`` -> ``"10.0.0.2"``; ``"fe80::1%wlan0"`` -> ``"fe80::1"``;
    None for anything that is not an address."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def canonical_mac(mac: str) -> str | None:
    mac = mac.strip().lower().replace("-", ":")
    if not _MAC.fullmatch(mac) or mac == "00:00:00:00:00:00":
        return None
    return mac


def parse_proc_arp(data: bytes) -> list[Neighbour]:
    """``/proc/net/arp``: a header line, then ``IP HWtype Flags HWaddress Mask Device``."""
    found = []
    for line in data.decode("ascii", "replace").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 6:
            continue
        ip, _hwtype, flags, hwaddr, _mask, device = fields[:6]
        try:
            complete = int(flags, 16) & _ARP_COMPLETE
        except ValueError:
            continue
        mac = canonical_mac(hwaddr)
        address = canonical_ip(ip)
        if complete and mac and address:
            found.append(Neighbour(address, mac, device))
    return found


def parse_ip_neigh(data: bytes, device: str) -> list[Neighbour]:
    """``ip -j neigh show dev DEV``: a JSON list of {dst, lladdr, state: [...]}."""
    try:
        entries = json.loads(data or b"[]")
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(entries, list):
        return []
    found = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        states = entry.get("state", [])
        if isinstance(states, list) and _NO_ADDRESS_STATES.intersection(map(str, states)):
            continue
        mac = canonical_mac(str(entry.get("lladdr", "")))
        address = canonical_ip(str(entry.get("dst", "")))
        if mac and address:
            found.append(Neighbour(address, mac, str(entry.get("dev", device))))
    return found


class KernelNeighbours:
    """The real table, scoped to the LAN interface."""

    def __init__(
        self,
        interface: str,
        *,
        ip_command: Sequence[str] = ("ip",),
        # Through /proc/self: systemd's ProcSubset=pid hides /proc/net but not this.
        proc_arp: Path = Path("/proc/self/net/arp"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interface = interface
        self._ip = tuple(ip_command)
        self._proc_arp = proc_arp
        self._clock = clock
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._warned = False

    async def mac_for(self, ip: str) -> str | None:
        address = canonical_ip(ip)
        if address is None:
            return None
        now = self._clock()
        hit = self._cache.get(address)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        found = None if ":" in address else self._arp()
        if found is None:
            family = "-6" if ":" in address else "-4"
            found = await self._ip_neigh(family, "neigh", "show", "to", address)
        mac = next((n.mac for n in found if n.ip == address), None)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[address] = (now, mac)
        return mac

    async def addresses_of(self, mac: str) -> list[str]:
        mac = mac.lower()
        v4 = self._arp()
        if v4 is None:
            v4 = await self._ip_neigh("-4", "neigh", "show")
        found = [n.ip for n in v4 if n.mac == mac]
        found += [n.ip for n in await self._ip_neigh("-6", "neigh", "show") if n.mac == mac]
        return sorted(set(found))

    def _arp(self) -> list[Neighbour] | None:
        """IPv4 neighbours from procfs; None when it cannot be read (then ``ip``)."""
        # A read of a small in-memory procfs file; cheaper than a thread hop.
        try:
            data = self._proc_arp.read_bytes()
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("neighbours_unreadable", path=str(self._proc_arp), error=str(exc))
            return None
        return [n for n in parse_proc_arp(data) if n.device == self._interface]

    async def _ip_neigh(self, *args: str) -> list[Neighbour]:
        argv = (*self._ip, "-j", *args, "dev", self._interface)
        try:
            result = await run_command(argv, deadline=IP_COMMAND_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            log.warning("neighbours_command_failed", command=argv[0], error=repr(exc))
            return []
        if result.returncode != 0:
            log.warning("neighbours_command_failed", error=result.error_text())
            return []
        return parse_ip_neigh(result.stdout, self._interface)


class StaticNeighbours:
    """A fixed table: for a portal on loopback (demos, browser tests) and benchmarks."""

    def __init__(self, table: dict[str, str]) -> None:
        self._table = {canonical_ip(ip) or ip: mac.lower() for ip, mac in table.items()}

    async def mac_for(self, ip: str) -> str | None:
        return self._table.get(canonical_ip(ip) or ip)

    async def addresses_of(self, mac: str) -> list[str]:
        return sorted(ip for ip, m in self._table.items() if m == mac.lower())


def describe(mac: str | None) -> str:
    return redact(mac) if mac else "-"
