from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.readers.mac.address import (
    is_device_address,
    is_locally_administered,
    is_multicast,
    mac_from_bytes,
    normalize_interface,
    normalize_mac,
    token_spellings,
)


@pytest.mark.parametrize(
    "text",
    [
        "aa:bb:cc:0d:ee:ff",
        "AA:BB:CC:0D:EE:FF",
        "AA-BB-CC-0D-EE-FF",
        "aa-bb-cc-0d-ee-ff",
        "aabbcc0deeff",
        "AABBCC0DEEFF",
        "aabb.cc0d.eeff",
        "aa:bb:cc:d:ee:ff",  # macOS prints one-digit octets
        "  aa:bb:cc:0d:ee:ff\n",
    ],
)
def test_normalize_accepts_common_spellings(text: str) -> None:
    assert normalize_mac(text) == "aa:bb:cc:0d:ee:ff"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "aa:bb:cc:dd:ee",
        "aa:bb:cc:dd:ee:ff:00",
        "aa:bb-cc:dd:ee:ff",  # mixed separators
        "gg:bb:cc:dd:ee:ff",
        "aabbccddeef",
        "aabbccddeeff0",
        "aa:bb:cc:ddd:ee:ff",
        "aab.bcc.ddeeff",
        "aa bb cc dd ee ff",
    ],
)
def test_normalize_rejects_what_is_not_a_mac(text: str) -> None:
    with pytest.raises(ValueError, match="not a MAC address"):
        normalize_mac(text)


@given(st.binary(min_size=6, max_size=6))
def test_every_spelling_normalises_back(raw: bytes) -> None:
    mac = mac_from_bytes(raw)
    spellings = token_spellings(mac)
    assert spellings[0] == mac
    assert len(set(spellings)) == len(spellings)
    assert len(spellings) == (4 if raw.hex().isdigit() else 7)
    assert {normalize_mac(s) for s in spellings} == {mac}


def test_mac_from_bytes_needs_six() -> None:
    assert mac_from_bytes(bytes(range(6))) == "00:01:02:03:04:05"
    with pytest.raises(ValueError, match="6 bytes"):
        mac_from_bytes(b"\x00" * 5)


@pytest.mark.parametrize(
    ("mac", "multicast", "local", "device"),
    [
        ("00:16:3e:12:34:56", False, False, True),  # vendor (Xen) address
        ("02:16:3e:12:34:56", False, True, True),  # locally administered
        ("da:a1:19:00:00:01", False, True, True),  # an iPhone's private Wi-Fi address
        ("01:00:5e:00:00:fb", True, False, False),  # IPv4 multicast
        ("ff:ff:ff:ff:ff:ff", True, True, False),  # broadcast
        ("00:00:00:00:00:00", False, False, False),
    ],
)
def test_address_bits(mac: str, multicast: bool, local: bool, device: bool) -> None:
    assert is_multicast(mac) is multicast
    assert is_locally_administered(mac) is local
    assert is_device_address(mac) is device


@pytest.mark.parametrize("name", ["wlan0", "br-lan", "eth0.100", "enx00e04c680001"])
def test_interface_names(name: str) -> None:
    assert normalize_interface(name) == name


@pytest.mark.parametrize("name", ["", "a" * 16, "wlan 0", "../x", "eth0:1", "."])
def test_bad_interface_names(name: str) -> None:
    with pytest.raises(ValueError, match="interface name"):
        normalize_interface(name)
