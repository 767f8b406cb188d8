"""The ``type = "nfc"`` reader table, and building the reader without importing nfcpy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.config import parse_config
from gateway.config.model import NfcReaderConfig
from gateway.errors import ConfigError
from gateway.model import TokenFormat

ROOT = Path(__file__).resolve().parent.parent
BASE = {"gateway": {"state_dir": "/tmp/x"}, "cobot": {"base_url": "https://co-up.cobot.me"}}


def nfc_table(**keys: object) -> dict[str, object]:
    return {**BASE, "readers": [{"name": "front-nfc", "type": "nfc", **keys}]}


def test_minimal_nfc_reader_gets_the_documented_defaults() -> None:
    (reader,) = parse_config(nfc_table(device="usb"), "gw.toml").readers
    assert isinstance(reader, NfcReaderConfig)
    assert reader.device == "usb"
    assert reader.token_format is TokenFormat.HEX
    assert reader.ndef_tokens is False
    assert reader.lift_time == 1.0


def test_all_keys() -> None:
    cfg = parse_config(
        nfc_table(
            device="tty:AMA0:pn532",
            token_format="hex-reversed",
            ndef_tokens=True,
            lift_time=2.5,
            direction="out",
        ),
        "gw.toml",
    )
    (reader,) = cfg.readers
    assert isinstance(reader, NfcReaderConfig)
    assert reader.token_format is TokenFormat.HEX_REVERSED
    assert (reader.ndef_tokens, reader.lift_time) == (True, 2.5)


@pytest.mark.parametrize(
    "device",
    [
        "usb",
        "usb:072f",
        "usb:072f:2200",
        "usb:001:023",
        "tty:AMA0:pn532",
        "tty:USB0:pn532",
        "tty:S0:arygon",
        "tty:serial0:pn532",
        "tty:USB",
        "udp",
        "udp:127.0.0.1:54321",
        "udp::54321",
    ],
)
def test_nfcpy_device_strings_accepted(device: str) -> None:
    parse_config(nfc_table(device=device), "gw.toml")


@pytest.mark.parametrize(
    "device",
    ["", "usb:", "usb:72f:2200", "/dev/ttyUSB0", "tty:AMA0:pn533x", "tty:/dev/x", "com:1", "usb "],
)
def test_bad_device_strings_name_the_key_and_the_forms(device: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(nfc_table(device=device), "gw.toml")
    message = str(info.value)
    assert message.startswith("gw.toml: readers[0].device: expected an nfcpy device")
    assert "'tty:AMA0:pn532'" in message and repr(device) in message


def test_missing_device_and_bounds() -> None:
    with pytest.raises(ConfigError, match=r"readers\[0\]\.device: missing"):
        parse_config(nfc_table(), "gw.toml")
    with pytest.raises(ConfigError, match=r"readers\[0\]\.lift_time: must be at least 0.1"):
        parse_config(nfc_table(device="usb", lift_time=0), "gw.toml")
    with pytest.raises(ConfigError, match=r"readers\[0\]\.token_format: expected one of"):
        parse_config(nfc_table(device="usb", token_format="octal"), "gw.toml")


def test_building_the_reader_does_not_import_nfcpy() -> None:
    code = """
        import json, sys
        from gateway.config.model import NfcReaderConfig
        from gateway.readers import build_reader
        from gateway.readers.base import ReaderContext
        from pathlib import Path
        reader = build_reader(
            NfcReaderConfig(name="n", device="usb"), ReaderContext(Path("."), lambda t: None)
        )
        print(json.dumps({"type": type(reader).__name__, "nfc": "nfc" in sys.modules}))
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=True,
    )
    assert json.loads(proc.stdout) == {"type": "NfcReader", "nfc": False}
