"""The booking-door keys exactly as issue 14 gives them, and clear errors around them."""

from __future__ import annotations

import re
import tomllib

import pytest

from gateway.config.loader import parse_config
from gateway.config.model import BookingsSection
from gateway.errors import ConfigError

ISSUE_EXAMPLE = """
[gateway]
state_dir = "/tmp/state"

[cobot]
base_url = "https://co-up.cobot.me"

[[doors]]
name = "room-1"
type = "command"                 # or "gpio"
command = ["/usr/local/bin/open-room-1"]
access = "booking"               # "check-in" (default: today's behaviour), "booking", or "member"
resource_id = "12355"            # the Cobot resource behind this door (access = "booking")
grace_before = 600               # seconds before a booking starts that its member may enter
grace_after = 300                # seconds after it ends
check_in = false                 # true: entering on a booking also checks the member in
walk_up_minutes = 0              # > 0: a tap at a free room books it now for this long

[bookings]
refresh_interval = 300           # seconds between snapshots of each room's bookings
"""


def parse(text: str) -> object:
    return parse_config(tomllib.loads(text), "gw.toml")


def test_the_issues_keys_parse() -> None:
    cfg = parse(ISSUE_EXAMPLE)
    (door,) = cfg.doors  # type: ignore[attr-defined]
    assert (door.access, door.resource_id, door.grace_before, door.grace_after) == (
        "booking",
        "12355",
        600.0,
        300.0,
    )
    assert (door.check_in, door.walk_up_minutes) == (False, 0)
    assert cfg.bookings == BookingsSection(refresh_interval=300.0)  # type: ignore[attr-defined]


def test_missing_resource_id_names_the_file_and_key() -> None:
    text = ISSUE_EXAMPLE.replace('resource_id = "12355"', "")
    with pytest.raises(
        ConfigError, match=r'gw.toml: doors\[0\].resource_id: missing; access = "booking"'
    ):
        parse(text)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'access = "bookings"',
            r"doors\[0\].access: expected one of 'check-in', 'booking', 'member'",
        ),
        ("grace_before = -1", r"doors\[0\].grace_before: must be at least 0"),
        ("walk_up_minutes = 2.5", r"doors\[0\].walk_up_minutes: expected an integer"),
        ("resource_id = 12355", r"doors\[0\].resource_id: expected a string"),
    ],
)
def test_bad_values_name_the_key(line: str, message: str) -> None:
    key = line.split(" = ", maxsplit=1)[0]
    text = re.sub(rf"^{key} = .*$", line, ISSUE_EXAMPLE, flags=re.M)
    with pytest.raises(ConfigError, match=message):
        parse(text)


def test_booking_keys_on_a_check_in_door_are_an_error() -> None:
    text = ISSUE_EXAMPLE.replace('access = "booking"', 'access = "check-in"')
    with pytest.raises(
        ConfigError, match=r'doors\[0\].resource_id: only used with access = "booking"'
    ):
        parse(text)


def test_a_typo_gets_a_did_you_mean() -> None:
    text = ISSUE_EXAMPLE.replace("grace_after", "grace_afterwards")
    with pytest.raises(ConfigError, match=r"did you mean 'grace_after'"):
        parse(text)


def test_max_age_below_the_refresh_interval() -> None:
    text = ISSUE_EXAMPLE + "max_age = 100\n"
    with pytest.raises(ConfigError, match=r"bookings.max_age: must be at least refresh_interval"):
        parse(text)
