from __future__ import annotations

import re
from typing import Any

import pytest

from gateway.config import parse_config
from gateway.config.model import MacReaderConfig
from gateway.errors import ConfigError


def config(**reader: Any) -> dict[str, Any]:
    return {
        "gateway": {"state_dir": "/var/lib/checkin-gateway"},
        "cobot": {"base_url": "https://co-up.cobot.me"},
        "readers": [{"name": "wifi", "type": "mac", **reader}],
    }


def test_defaults() -> None:
    cfg = parse_config(config(interface="wlan0"), "gw.toml")
    (reader,) = cfg.readers
    assert reader == MacReaderConfig(name="wifi", interface="wlan0")
    assert (reader.away_after, reader.checkout_on_departure, reader.ignore, reader.door) == (
        1800.0,
        False,
        (),
        None,
    )


def test_ignore_list_is_normalised() -> None:
    cfg = parse_config(
        config(
            interface="br-lan",
            away_after=900,
            checkout_on_departure=True,
            ignore=["00-16-3E-AA-BB-CC", "0016.3eaa.bbcd", "00:16:3e:aa:bb:ce"],
        ),
        "gw.toml",
    )
    (reader,) = cfg.readers
    assert isinstance(reader, MacReaderConfig)
    assert reader.ignore == ("00:16:3e:aa:bb:cc", "00:16:3e:aa:bb:cd", "00:16:3e:aa:bb:ce")
    assert reader.away_after == 900.0
    assert reader.checkout_on_departure is True


@pytest.mark.parametrize(
    ("reader", "message"),
    [
        (
            {"interface": "wlan0", "ignore": ["00:16:3e:aa:bb:cc", "printer"]},
            "gw.toml: readers[0].ignore[1]: not a MAC address: 'printer'",
        ),
        ({"interface": "wlan0", "ignore": "00:16:3e:aa:bb:cc"}, "readers[0].ignore: expected"),
        ({"interface": "wlan 0"}, "readers[0].interface: not a network interface name"),
        ({}, "readers[0].interface: missing"),
        ({"interface": "wlan0", "away_after": 5}, "readers[0].away_after: must be at least 60"),
        (
            {"interface": "wlan0", "checkout_on_depature": True},
            "did you mean 'checkout_on_departure'",
        ),
    ],
)
def test_errors_name_the_key(reader: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(config(**reader), "gw.toml")
