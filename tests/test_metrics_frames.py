"""Every reader kind's frame counters in the one vocabulary of
``checkin_gateway_reader_frames_total{outcome}``, from the readers' own stats classes
(a renamed counter breaks this test, not the dashboard)."""

from __future__ import annotations

import dataclasses
from typing import Any

from gateway.metrics.frames import OUTCOMES, frame_outcomes
from gateway.readers.base import ReaderState
from gateway.readers.hid.reader import HidReaderStats
from gateway.readers.keyboard import KeyboardReaderStats
from gateway.readers.mac.reader import MacReaderStats
from gateway.readers.nfc.reader import NfcReaderStats
from gateway.readers.serial.reader import SerialReaderStats
from gateway.readers.wiegand.formats import Rejection
from gateway.readers.wiegand.reader import WiegandReaderStats

READY = ReaderState.READY


def as_status(stats: Any) -> dict[str, Any]:
    """As ``gateway.status.report`` hands them to the metrics view."""
    return dataclasses.asdict(stats)  # type: ignore[no-any-return]


def serial(protocol: str) -> SerialReaderStats:
    return SerialReaderStats(
        state=READY,
        frames=7,
        bad=2,
        ghosts=1,
        garbage_bytes=40,
        taps=3,
        reconnects=0,
        last_error=None,
        unconfirmed=4,
        protocol=protocol,
    )


def test_serial_frames_by_protocol() -> None:
    rdm = frame_outcomes(as_status(serial("rdm6300")))
    assert rdm == {"ok": 7, "bad_checksum": 2, "ghost": 1, "phantom": 4}
    # A text line has no checksum: an unprintable or over-long line is garbage.
    line = frame_outcomes(as_status(serial("line")))
    assert line == {"ok": 7, "garbage": 2, "ghost": 1, "phantom": 4}


def test_wiegand_parity_is_a_failed_check_and_noise_is_garbage() -> None:
    stats = WiegandReaderStats(
        state=READY,
        taps=5,
        cards=5,
        keys=6,
        pins=1,
        rejected={
            Rejection.PARITY: 2,
            Rejection.SWAPPED: 1,
            Rejection.NOISE: 3,
            Rejection.WRONG_LENGTH: 1,
        },
        swapped_suspected=False,
        opens=1,
        last_error=None,
    )
    assert frame_outcomes(as_status(stats)) == {"ok": 11, "bad_checksum": 3, "garbage": 4}
    clean = dataclasses.replace(stats, rejected={})
    assert frame_outcomes(as_status(clean)) == {"ok": 11, "bad_checksum": 0, "garbage": 0}


def test_keyboard_wedges_and_stdin() -> None:
    hid = HidReaderStats(
        state=READY,
        taps=2,
        tokens=3,
        partial=1,
        unmapped_keys=9,
        too_long=2,
        opens=1,
        last_error=None,
    )
    assert frame_outcomes(as_status(hid)) == {"ok": 3, "garbage": 3}
    keyboard = KeyboardReaderStats(state=READY, lines=4, taps=4, too_long=1, invalid=1)
    assert frame_outcomes(as_status(keyboard)) == {"ok": 4, "garbage": 2}


def test_presence_and_nfc() -> None:
    mac = MacReaderStats(
        READY, 50, 3, 20, 27, 4, 2, 1, 1, 0, 0, 0, 0, 0, None
    )  # positional: the class has many counters
    assert frame_outcomes(as_status(mac)) == {"ok": 50}
    nfc = NfcReaderStats(state=READY, taps=2, ndef_taps=0, reconnects=0, last_error=None)
    assert frame_outcomes(as_status(nfc)) == {}


def test_only_the_documented_outcomes() -> None:
    seen = set()
    for protocol in ("rdm6300", "line"):
        seen |= frame_outcomes(as_status(serial(protocol))).keys()
    assert seen <= set(OUTCOMES)
    assert frame_outcomes({}) == {} and frame_outcomes({"frames": "7"}) == {}
