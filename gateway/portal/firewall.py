"""The portal's firewall: its own nftables ``inet`` table, so IPv4 and IPv6 alike.

Devices on the LAN interface whose MAC is not in the ``authorised`` set get DNS, DHCP
(v4 and v6), ICMPv6 to the gateway (IPv6 does not work without neighbour discovery) and
the portal; their port 80 is redirected to the portal, whatever the address family; all
else is rejected at once (TCP reset, ICMP admin-prohibited), so browsers and probes fail
fast instead of hanging. A MAC in the set is let out until its element's timeout ends,
which the kernel enforces even if the gateway is down.

The table is data rendered to an ``nft -f`` script and replaced atomically (with the
authorised elements in the same transaction, so a restart never opens or closes anyone
in between). The table only restricts: our accepts are final for our chains only, and
whatever the host's own ruleset says still applies. On stop the table stays, so the
LAN stays closed (and the authorised stay out) while the gateway restarts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from gateway.errors import GatewayError
from gateway.portal.command import run as run_command
from gateway.redact import redact

log = structlog.get_logger(__name__)

NFT_TIMEOUT = 5.0  # seconds for one nft transaction
CONNTRACK_TIMEOUT = 5.0  # seconds for one conntrack -D
SET = "authorised"
DNS_PORT = 53
DHCP_PORTS = (67, 547)  # DHCPv4 server, DHCPv6 server
HTTP_PORT = 80


class FirewallError(GatewayError):
    """nft or conntrack failed; the message carries the tool's own words."""


@dataclass(frozen=True, slots=True)
class Ruleset:
    table: str
    interface: str
    portal_port: int

    def render(self, elements: Sequence[tuple[str, float]] = ()) -> str:
        """The whole table (replacing any previous one) with ``elements`` (MAC,
        seconds left) in the set. Names are checked at config load (settings.py)."""
        iif = f'iifname "{self.interface}"'
        dhcp = ", ".join(map(str, DHCP_PORTS))
        lines = [
            f"table inet {self.table} {{}}",
            f"delete table inet {self.table}",
            f"table inet {self.table} {{",
            f"  set {SET} {{",
            "    type ether_addr",
            "    flags timeout",
        ]
        if elements:
            items = ", ".join(f"{mac} timeout {_seconds(left)}s" for mac, left in elements)
            lines.append(f"    elements = {{ {items} }}")
        lines += [
            "  }",
            "  chain redirect_http {",
            "    type nat hook prerouting priority dstnat; policy accept;",
            f"    {iif} ether saddr != @{SET} tcp dport {HTTP_PORT}"
            f" redirect to :{self.portal_port}",
            "  }",
            "  chain guard_input {",
            "    type filter hook input priority filter; policy accept;",
            f"    {iif} ether saddr != @{SET} jump captive_input",
            "  }",
            "  chain captive_input {",
            f"    udp dport {{ {DNS_PORT}, {dhcp} }} accept",
            f"    tcp dport {{ {DNS_PORT}, {self.portal_port} }} accept",
            "    meta l4proto ipv6-icmp accept",
            "    jump refuse",
            "  }",
            "  chain guard_forward {",
            "    type filter hook forward priority filter; policy accept;",
            f"    {iif} ether saddr != @{SET} jump captive_forward",
            "  }",
            "  chain captive_forward {",
            # The DHCP server may hand out a resolver beyond the gateway.
            f"    meta l4proto {{ tcp, udp }} th dport {DNS_PORT} accept",
            "    jump refuse",
            "  }",
            "  chain refuse {",
            "    meta l4proto tcp reject with tcp reset",
            "    reject with icmpx admin-prohibited",
            "  }",
            "}",
        ]
        return "\n".join(lines) + "\n"

    def allow_script(self, mac: str, seconds: float) -> str:
        # "add" of a present element keeps its old timeout, and "delete" of an absent
        # one fails the transaction: add, delete, add makes both cases one new timeout.
        element = f"inet {self.table} {SET} {{ {mac} }}"
        return (
            f"add element {element}\n"
            f"delete element {element}\n"
            f"add element inet {self.table} {SET} {{ {mac} timeout {_seconds(seconds)}s }}\n"
        )

    def revoke_script(self, mac: str) -> str:
        element = f"inet {self.table} {SET} {{ {mac} }}"
        return f"add element {element}\ndelete element {element}\n"


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


def parse_set(data: bytes) -> dict[str, float]:
    """``nft -j list set``: MAC -> seconds until its element expires (inf: no timeout)."""
    found: dict[str, float] = {}
    for item in json.loads(data).get("nftables", []):
        for elem in item.get("set", {}).get("elem", []):
            if isinstance(elem, str):
                found[elem] = math.inf
            elif isinstance(elem, dict) and "elem" in elem:
                inner = elem["elem"]
                found[str(inner["val"])] = float(inner.get("expires", math.inf))
    return found


class Firewall(Protocol):
    async def install(self, elements: Sequence[tuple[str, float]]) -> None:
        """Replace the table, with ``elements`` (MAC, seconds left) authorised."""

    async def allow(self, mac: str, seconds: float) -> None: ...

    async def revoke(self, mac: str) -> None: ...

    async def forget_connections(self, ips: Sequence[str]) -> None:
        """Drop the tracked connections of these client addresses, so redirected ones
        (to the portal) and allowed ones (to the internet) are looked at afresh."""


class NftFirewall:
    def __init__(
        self,
        rules: Ruleset,
        *,
        nft: Sequence[str] = ("nft",),
        conntrack: Sequence[str] = ("conntrack",),
    ) -> None:
        self.rules = rules
        self._nft = tuple(nft)
        self._conntrack = tuple(conntrack)

    async def _apply(self, script: str, what: str) -> None:
        try:
            result = await run_command(
                (*self._nft, "-f", "-"), stdin=script.encode(), deadline=NFT_TIMEOUT
            )
        except FileNotFoundError as exc:
            raise FirewallError(
                f"{what}: nft not found; install the Debian package 'nftables'"
            ) from exc
        except (OSError, TimeoutError) as exc:
            raise FirewallError(f"{what}: nft did not run: {exc!r}") from exc
        if result.returncode != 0:
            hint = ""
            if b"Operation not permitted" in result.stderr:
                hint = " (needs CAP_NET_ADMIN: AmbientCapabilities=CAP_NET_ADMIN in the unit)"
            raise FirewallError(f"{what}: nft failed{hint}: {result.error_text()}")

    async def install(self, elements: Sequence[tuple[str, float]]) -> None:
        await self._apply(self.rules.render(elements), "installing the portal's table")
        log.info(
            "firewall_installed",
            table=self.rules.table,
            interface=self.rules.interface,
            authorised=len(elements),
        )

    async def allow(self, mac: str, seconds: float) -> None:
        await self._apply(self.rules.allow_script(mac, seconds), "authorising a device")
        log.info("firewall_allowed", mac=redact(mac), seconds=_seconds(seconds))

    async def revoke(self, mac: str) -> None:
        await self._apply(self.rules.revoke_script(mac), "revoking a device")
        log.info("firewall_revoked", mac=redact(mac))

    async def authorised(self) -> dict[str, float]:
        argv = (*self._nft, "-j", "list", "set", "inet", self.rules.table, SET)
        try:
            result = await run_command(argv, deadline=NFT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise FirewallError(f"listing the authorised set: {exc!r}") from exc
        if result.returncode != 0:
            raise FirewallError(f"listing the authorised set: {result.error_text()}")
        return parse_set(result.stdout)

    async def forget_connections(self, ips: Sequence[str]) -> None:
        for ip in ips:
            family = ("-f", "ipv6") if ":" in ip else ()
            for direction in ("-s", "-d"):
                argv = (*self._conntrack, "-D", *family, direction, ip)
                try:
                    result = await run_command(argv, deadline=CONNTRACK_TIMEOUT)
                except (OSError, TimeoutError) as exc:
                    # Not fatal: the device is let out (or in) either way; old
                    # connections just live until their own timeouts.
                    log.warning("conntrack_failed", error=repr(exc))
                    return
                # conntrack exits 1 when nothing matched; its summary line says so.
                if result.returncode != 0 and b"flow entries have been deleted" not in (
                    result.stderr
                ):
                    log.warning("conntrack_failed", error=result.error_text())


class NoFirewall:
    """``firewall = false``: another box does the filtering; the portal only signs in."""

    async def install(self, elements: Sequence[tuple[str, float]]) -> None:
        log.info("firewall_disabled", authorised=len(elements))

    async def allow(self, mac: str, seconds: float) -> None:
        pass

    async def revoke(self, mac: str) -> None:
        pass

    async def forget_connections(self, ips: Sequence[str]) -> None:
        pass
