"""Checks of ``[portal]`` beyond types and bounds.

The interface and table names are written into an nftables script, so they are held to
the kernel's and nft's own name rules here: a stray quote or brace must be a config
error at start, never a surprise inside the firewall.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from gateway.config.model import PortalSection
from gateway.config.schema import Where

# Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no '/', whitespace or ':'.
# We are stricter (letters, digits, '.', '-', '_') so the name is safe inside quotes.
_IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,14}")
# nft identifiers: a letter, then letters, digits, '_' (also what nft accepts unquoted).
_NFT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
MAX_SPACE_NAME = 80


def check_portal(cfg: PortalSection, where: Where) -> None:
    if not _IFNAME.fullmatch(cfg.interface):
        raise where.key("interface").error(
            f"expected a network interface name like 'wlan0' or 'br-lan', got {cfg.interface!r}"
        )
    if not _NFT_NAME.fullmatch(cfg.table):
        raise where.key("table").error(
            f"expected an nftables name (a letter, then letters, digits or '_'), got {cfg.table!r}"
        )
    name = cfg.space_name.strip()
    if not name or len(name) > MAX_SPACE_NAME:
        raise where.key("space_name").error(
            f"expected the space's name (1 to {MAX_SPACE_NAME} characters)"
        )
    if not cfg.listen:
        raise where.key("listen").error("expected at least one address, e.g. ['0.0.0.0', '::']")
    for i, address in enumerate(cfg.listen):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise (
                where.key("listen").index(i).error(f"expected an IP address, got {address!r}")
            ) from None
    for i, subnet in enumerate(cfg.lan_subnets):
        try:
            ipaddress.ip_network(subnet, strict=False)
        except ValueError:
            raise (
                where.key("lan_subnets")
                .index(i)
                .error(
                    f"expected a network like '192.168.50.0/24' or 'fd00:50::/64', got {subnet!r}"
                )
            ) from None
    if cfg.url is not None:
        url = urlsplit(cfg.url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise where.key("url").error(
                f"expected an http(s) URL like 'http://portal.lan:8080/', got {cfg.url!r}"
            )
        if url.query or url.fragment or url.username or url.password:
            raise where.key("url").error("expected a plain URL without query, fragment or login")
