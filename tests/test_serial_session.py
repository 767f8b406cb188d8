"""The confirmation rule and the garbage watch, on a fake clock and bytes."""

from __future__ import annotations

import pytest

from gateway.config.loader import parse_config
from gateway.config.model import SerialReaderConfig
from gateway.errors import ConfigError
from gateway.model import TokenFormat
from gateway.readers.serial.frames import ID12LA, encode_em4100, encode_rdm6300
from gateway.readers.serial.session import GARBAGE_RUN, Confirmer, GarbageWatch

CARD = bytes.fromhex("0A1B2C3D4E")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_single_read_is_never_a_tap_and_is_counted_once_its_window_passed() -> None:
    clock = Clock()
    confirm = Confirmer(2, 0.5, clock)
    assert not confirm.accept("PHANTOM")
    assert confirm.dropped == 0  # it might still be confirmed
    clock.now = 0.51
    assert confirm.dropped == 1
    assert not confirm.accept("PHANTOM")  # a new first read, not a confirmation
    clock.now = 2.0
    assert confirm.dropped == 2


def test_a_held_card_is_confirmed_by_its_repeat_and_stays_confirmed() -> None:
    clock = Clock()
    confirm = Confirmer(2, 0.5, clock)
    results = []
    for _ in range(10):  # an RDM6300 repeats a resting card about every 65 ms
        results.append(confirm.accept("CARD"))
        clock.now += 0.065
    assert results == [False] + [True] * 9
    clock.now += 1.0
    assert confirm.dropped == 0


def test_repeats_further_apart_than_the_window_do_not_confirm() -> None:
    clock = Clock()
    confirm = Confirmer(2, 0.5, clock)
    for _ in range(3):
        assert not confirm.accept("CARD")
        clock.now += 0.6
    assert confirm.dropped == 3


def test_two_cards_are_confirmed_each_on_its_own() -> None:
    clock = Clock()
    confirm = Confirmer(3, 0.5, clock)
    seq = ["A", "B", "A", "B", "A", "B"]
    assert [confirm.accept(t) for t in seq] == [False, False, False, False, True, True]


def test_one_read_confirms_everything() -> None:
    confirm = Confirmer(1, 0.5, Clock())
    assert confirm.accept("X") and confirm.dropped == 0
    with pytest.raises(ValueError, match="reads"):
        Confirmer(0, 0.5)


def test_garbage_watch_names_the_protocol_that_decodes_the_bytes() -> None:
    watch = GarbageWatch("rdm6300", 9600, TokenFormat.HEX)
    frame = encode_em4100(CARD, ID12LA)
    fed = 0
    warnings = []
    while watch.watching:
        fed += len(frame)
        warnings.append(watch.feed(frame, ok=0, garbage_bytes=fed))
    assert fed >= GARBAGE_RUN and warnings[:-1] == [None] * (len(warnings) - 1)
    assert warnings[-1] == (
        f"{fed} bytes of garbage and not one valid 'rdm6300' frame: the bytes are valid "
        "'id12la' frames: set protocol = 'id12la' for this reader"
    )
    assert watch.feed(frame, ok=0, garbage_bytes=fed * 2) is None  # once only


def test_garbage_watch_says_baud_rate_when_nothing_decodes() -> None:
    watch = GarbageWatch("id12la", 115200, TokenFormat.HEX)
    message = watch.feed(b"\xf0\x0f" * 40, ok=0, garbage_bytes=80)
    assert message is not None and "wrong baud rate (baudrate = 115200" in message


def test_garbage_watch_stops_at_the_first_good_frame() -> None:
    watch = GarbageWatch("rdm6300", 9600, TokenFormat.HEX)
    assert watch.feed(b"\xff" * 10, ok=0, garbage_bytes=10) is None
    assert watch.feed(encode_rdm6300(CARD), ok=1, garbage_bytes=10) is None
    assert not watch.watching
    assert watch.feed(b"\xff" * 500, ok=1, garbage_bytes=510) is None
    assert watch.warning is None


def _serial(**table: object) -> SerialReaderConfig:
    data = {
        "gateway": {"state_dir": "/tmp/x"},
        "cobot": {"base_url": "https://example.cobot.me"},
        "readers": [{"name": "front", "type": "serial", "port": "/dev/ttyS0", **table}],
    }
    reader = parse_config(data, "gateway.toml").readers[0]
    assert isinstance(reader, SerialReaderConfig)
    return reader


def test_confirmation_defaults_per_protocol_and_config_errors() -> None:
    assert _serial().reads_to_confirm == 2  # rdm6300
    assert _serial(protocol="id12la").reads_to_confirm == 1
    assert _serial(protocol="line").reads_to_confirm == 1
    assert _serial(confirm_reads=1).reads_to_confirm == 1
    assert _serial(protocol="id12la", confirm_reads=3, confirm_window=0.2).reads_to_confirm == 3
    with pytest.raises(ConfigError, match=r"gateway.toml: readers\[0\].confirm_reads"):
        _serial(confirm_reads=0)
    with pytest.raises(ConfigError, match=r"readers\[0\].protocol"):
        _serial(protocol="id12")
