"""MAC addresses as tokens: one spelling, and what the address itself tells.

Cobot tokens are free text, so the same device may be registered as
``aa:bb:cc:dd:ee:ff`` (what the captive portal writes), ``AA-BB-CC-DD-EE-FF`` (what a
Windows admin copies from ``ipconfig``), ``aabb.ccdd.eeff`` (a Cisco switch) or bare hex.
Everything here is pure and cheap: it runs for every frame the kernel filter lets through.
"""

from __future__ import annotations

import re

# The canonical form: lowercase, colon-separated, as the captive portal registers it.
_CANONICAL = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_SEPARATED = re.compile(r"[0-9a-f]{1,2}([:-])(?:[0-9a-f]{1,2}\1){4}[0-9a-f]{1,2}")
_CISCO = re.compile(r"[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}")
_BARE = re.compile(r"[0-9a-f]{12}")

_MULTICAST_BIT = 0x01  # I/G bit of the first octet: a group address, never a device
_LOCAL_BIT = 0x02  # U/L bit: locally administered, e.g. a phone's per-network random MAC


def normalize_mac(text: str) -> str:
    """Any common spelling -> ``aa:bb:cc:dd:ee:ff``; ``ValueError`` if it is not a MAC.

    Accepts colons or dashes (one-digit octets too, as macOS prints them), Cisco's dotted
    triples, and 12 bare hex digits, in either case, with surrounding blanks.
    """
    s = text.strip().lower()
    if _CANONICAL.fullmatch(s):
        return s
    if m := _SEPARATED.fullmatch(s):
        return ":".join(part.zfill(2) for part in s.split(m.group(1)))
    if _CISCO.fullmatch(s) or _BARE.fullmatch(s):
        digits = s.replace(".", "")
        return ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    raise ValueError(f"not a MAC address: {text!r}")


def mac_from_bytes(raw: bytes) -> str:
    """Six bytes off the wire -> the canonical form."""
    if len(raw) != 6:
        raise ValueError(f"a MAC address has 6 bytes, got {len(raw)}")
    return raw.hex(":")


def token_spellings(mac: str) -> tuple[str, ...]:
    """The spellings under which a canonical ``mac`` may be registered in Cobot, the
    canonical one first; the token cache matches exactly, so the reader tries each."""
    bare = mac.replace(":", "")
    upper = mac.upper()
    spellings = (
        mac,
        upper,
        mac.replace(":", "-"),
        upper.replace(":", "-"),
        bare,
        bare.upper(),
        f"{bare[0:4]}.{bare[4:8]}.{bare[8:12]}",
    )
    return tuple(dict.fromkeys(spellings))  # all digits: upper == lower


def is_multicast(mac: str) -> bool:
    """A group address (broadcast included): never the source of a real device."""
    return bool(int(mac[0:2], 16) & _MULTICAST_BIT)


def is_locally_administered(mac: str) -> bool:
    """Not burned in by a vendor. Phones and laptops randomise their Wi-Fi MAC this way
    (per network or per day), so such an address identifies a device only if its owner
    registered it."""
    return bool(int(mac[0:2], 16) & _LOCAL_BIT)


def is_device_address(mac: str) -> bool:
    """A unicast address that can belong to a device (not group, not all zeros)."""
    return not is_multicast(mac) and mac != "00:00:00:00:00:00"


_IFNAMSIZ = 16  # the kernel's limit, including the terminating NUL


def normalize_interface(name: str) -> str:
    """A network interface name as the kernel accepts it (``wlan0``, ``br-lan``)."""
    if (
        not 0 < len(name) < _IFNAMSIZ
        or name in (".", "..")
        or any(c in "/:" or c.isspace() or not c.isprintable() for c in name)
    ):
        raise ValueError(f"not a network interface name: {name!r}")
    return name
