"""Config: the documented keys load; every mistake names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_access_token, load_config
from gateway.config.model import CommandDoorConfig, SerialReaderConfig
from gateway.errors import ConfigError
from gateway.model import Direction, OfflinePolicy
from gateway.readers.tokens import TokenFormat

ISSUE_EXAMPLE = """
[gateway]
state_dir = "/var/lib/checkin-gateway"   # SQLite files live here
offline_policy = "known-tokens"          # or "deny"

[cobot]
base_url = "https://co-up.cobot.me"      # the space's root
access_token_file = "/etc/checkin-gateway/cobot-token"
check_in_rpm = 120
default_rpm = 60

[[readers]]
name = "front"
type = "serial"          # later: nfc, mac, keyboard
port = "/dev/ttyAMA0"
baudrate = 9600
protocol = "rdm6300"     # or "line": one token per line
door = "front"
direction = "in"         # "out" checks the member out

[[doors]]
name = "front"
type = "command"         # argv run on each unlock; later: gpio
command = ["/usr/local/bin/open-door"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_the_issue_example_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ISSUE_EXAMPLE))
    assert cfg.gateway.state_dir == Path("/var/lib/checkin-gateway")
    assert cfg.gateway.offline_policy is OfflinePolicy.KNOWN_TOKENS
    assert cfg.cobot.check_in_rpm == 120
    (reader,) = cfg.readers
    assert isinstance(reader, SerialReaderConfig)
    assert (reader.port, reader.baudrate, reader.protocol) == ("/dev/ttyAMA0", 9600, "rdm6300")
    assert reader.direction is Direction.IN
    assert reader.token_format is TokenFormat.HEX
    (door,) = cfg.doors
    assert isinstance(door, CommandDoorConfig)
    assert door.command == ("/usr/local/bin/open-door",)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("baudrate = 9600", "baudrat = 9600"),
            "readers[0].baudrat: unknown key (did you mean 'baudrate'?)",
        ),
        (
            ("baudrate = 9600", 'baudrate = "fast"'),
            "readers[0].baudrate: expected an integer, got str 'fast'",
        ),
        (
            ('offline_policy = "known-tokens"', 'offline_policy = "sometimes"'),
            "gateway.offline_policy: expected one of 'known-tokens', 'deny'",
        ),
        (
            ('direction = "in"', 'direction = "sideways"'),
            "readers[0].direction: expected one of 'in', 'out'",
        ),
        (
            ('door = "front"', 'door = "back"'),
            "readers[0].door: no door named 'back' (doors: front)",
        ),
        (('type = "serial"', 'type = "laser"'), "readers[0].type: expected one of"),
        (('port = "/dev/ttyAMA0"\n', ""), "readers[0].port: missing; expected a string"),
        (
            ("check_in_rpm = 120", "check_in_rpm = 0"),
            "cobot.check_in_rpm: must be at least 1, got 0",
        ),
        (
            ('base_url = "https://co-up.cobot.me"', 'base_url = "co-up.cobot.me"'),
            "cobot.base_url: expected an http(s) URL",
        ),
        (
            ('base_url = "https://co-up.cobot.me"', 'base_url = "https://co-up.cobot.me/api"'),
            "cobot.base_url: expected the space's root",
        ),
        (("[cobot]", "[cobbot]"), "cobbot: unknown section"),
        (
            ('command = ["/usr/local/bin/open-door"]', 'command = "/usr/local/bin/open-door"'),
            "doors[0].command: expected a list of strings",
        ),
        (
            ('command = ["/usr/local/bin/open-door"]', "command = []"),
            "doors[0].command: expected a list of at least 1 item(s), got 0",
        ),
        (
            ('command = ["/usr/local/bin/open-door"]', 'command = [""]'),
            "doors[0].command[0]: expected a non-empty string",
        ),
        (
            (
                'command = ["/usr/local/bin/open-door"]',
                'command = ["/usr/local/bin/open-door"]\nfeedback_command = []',
            ),
            "doors[0].feedback_command: expected a list of at least 1 item(s), got 0",
        ),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in ISSUE_EXAMPLE
    path = write(tmp_path, ISSUE_EXAMPLE.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def test_duplicate_reader_names(tmp_path: Path) -> None:
    text = (
        ISSUE_EXAMPLE
        + ISSUE_EXAMPLE[ISSUE_EXAMPLE.index("[[readers]]") : ISSUE_EXAMPLE.index("[[doors]]")]
    )
    with pytest.raises(ConfigError, match=r"readers\[1\]\.name: duplicate name 'front'"):
        load_config(write(tmp_path, text))


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[gateway\nstate_dir = 1"))
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "absent.toml")


def test_access_token_sources(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            ISSUE_EXAMPLE.replace('access_token_file = "/etc/checkin-gateway/cobot-token"\n', ""),
        )
    )
    assert load_access_token(cfg, {"COBOT_ACCESS_TOKEN": " abc \n"}) == "abc"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "cobot-token").write_text("from-systemd\n")
    assert load_access_token(cfg, {"CREDENTIALS_DIRECTORY": str(creds)}) == "from-systemd"
    with pytest.raises(ConfigError, match="cobot.access_token_file: no Cobot access token"):
        load_access_token(cfg, {})
    token_file = tmp_path / "token"
    token_file.write_text("")
    cfg2 = load_config(
        write(tmp_path, ISSUE_EXAMPLE.replace("/etc/checkin-gateway/cobot-token", str(token_file)))
    )
    with pytest.raises(ConfigError, match="is empty"):
        load_access_token(cfg2, {})


READER_TABLE = ISSUE_EXAMPLE[ISSUE_EXAMPLE.index("[[readers]]") : ISSUE_EXAMPLE.index("[[doors]]")]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            '[[readers]]\nname = "g"\ntype = "wiegand"\nd0_line = 5\nd1_line = 6\nformat = "35"\n',
            "readers[1].format: unknown Wiegand format '35'; expected one of auto, 26, 34, 37",
        ),
        (
            '[[readers]]\nname = "g"\ntype = "wiegand"\nd0_line = 5\nd1_line = 6\n'
            'format = ["26", "h10302", "37"]\n',
            "readers[1].format: H10302 and H10304 are both 37 bits",
        ),
        (
            '[[readers]]\nname = "g"\ntype = "wiegand"\nd0_line = 5\nd1_line = 5\n',
            "readers[1].d1_line: D0 and D1 are the same line (5)",
        ),
        (
            '[[readers]]\nname = "g"\ntype = "wiegand"\nd0_line = 5\n',
            "readers[1].d1_line: missing",
        ),
        (
            '[[readers]]\nname = "g"\ntype = "wiegand"\nd0_line = 5\nd1_line = 6\n'
            'token_format = "facility"\n',
            "readers[1].token_format: expected one of 'facility-card', 'decimal', 'hex'",
        ),
        (
            '[[readers]]\nname = "h"\ntype = "hid"\ndevice = "/dev/hidraw0"\n',
            "readers[1].device: expected a /dev/input/by-id/...-event-kbd path or 'vendor:product'",
        ),
        (
            '[[readers]]\nname = "h"\ntype = "hid"\ndevice = "08ff:0009"\nlayout = "dvorak"\n',
            "readers[1].layout: expected one of 'us', 'uk', 'de', 'fr'",
        ),
    ],
)
def test_wiegand_and_hid_config_errors(tmp_path: Path, table: str, expected: str) -> None:
    path = write(tmp_path, ISSUE_EXAMPLE.replace("[[doors]]", table + "\n[[doors]]"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert expected in str(err.value)


def test_wiegand_and_hid_load(tmp_path: Path) -> None:
    from gateway.config.model import HidReaderConfig, WiegandReaderConfig

    extra = (
        '[[readers]]\nname = "g"\ntype = "wiegand"\nchip = "pinctrl-rp1"\nd0_line = "GPIO5"\n'
        'd1_line = 6\nformat = ["26", "34"]\ntoken_format = "decimal"\n\n'
        '[[readers]]\nname = "h"\ntype = "hid"\ndevice = "08ff:0009"\n\n'
    )
    cfg = load_config(write(tmp_path, ISSUE_EXAMPLE.replace("[[doors]]", extra + "[[doors]]")))
    wiegand, hid = cfg.readers[1:]
    assert isinstance(wiegand, WiegandReaderConfig) and isinstance(hid, HidReaderConfig)
    assert (wiegand.chip, wiegand.d0_line, wiegand.d1_line) == ("pinctrl-rp1", "GPIO5", 6)
    assert wiegand.format == ("26", "34") and wiegand.token_format == "decimal"
    assert (hid.device, hid.layout, hid.token_timeout) == ("08ff:0009", "us", 0.5)
