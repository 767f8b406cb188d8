"""A reader's frame counters as ``checkin_gateway_reader_frames_total{outcome}``.

Each kind of reader counts in its own terms (its ``stats`` in ``checkin-gateway
status``); the metric uses one vocabulary for all of them, so one dashboard panel reads
every door:

- ``ok``: a frame, line or token decoded as a card (Wiegand: a card or a keypad frame);
- ``bad_checksum``: a frame whose check failed (RDM6300/ID-12LA checksum, Wiegand parity,
  also a Wiegand frame that decodes only with D0/D1 swapped);
- ``garbage``: input that is not a frame at all (a text reader's over-long or
  unprintable line, a Wiegand glitch or a bit count no format has, a keyboard
  wedge's half-typed token);
- ``ghost``: an all-zero id cheap RDM6300 boards emit without a card;
- ``phantom``: a single read never confirmed by a repeat (dropped).

The reader's kind is told by the counters it has (status carries no type).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OUTCOMES = ("ok", "bad_checksum", "garbage", "ghost", "phantom")
# Wiegand rejections (gateway.readers.wiegand.formats.Rejection) that are a failed check.
_WIEGAND_CHECK = frozenset({"parity", "swapped"})


def frame_outcomes(stats: Mapping[str, Any]) -> dict[str, int]:
    """Counts by outcome for one reader's ``stats``; empty for a reader without frame
    counters (NFC: nfcpy reports only cards it read)."""
    out: dict[str, int] = {}

    def add(outcome: str, value: object) -> None:
        if isinstance(value, int) and not isinstance(value, bool):
            out[outcome] = out.get(outcome, 0) + value

    if "garbage_bytes" in stats:  # serial: RDM6300, ID-12LA, text lines
        add("ok", stats.get("frames"))
        # A text line has no checksum: its bad lines are garbage.
        add("garbage" if stats.get("protocol") == "line" else "bad_checksum", stats.get("bad"))
        add("ghost", stats.get("ghosts"))
        add("phantom", stats.get("unconfirmed"))
    elif isinstance(stats.get("rejected"), Mapping):  # Wiegand
        add("ok", stats.get("cards"))
        add("ok", stats.get("keys"))
        out.setdefault("bad_checksum", 0)
        out.setdefault("garbage", 0)
        for reason, n in stats["rejected"].items():
            add("bad_checksum" if reason in _WIEGAND_CHECK else "garbage", n)
    elif "partial" in stats:  # a USB keyboard-wedge reader (evdev)
        add("ok", stats.get("tokens"))
        add("garbage", stats.get("partial"))
        add("garbage", stats.get("too_long"))
    elif "lines" in stats:  # the keyboard (stdin) reader
        add("ok", stats.get("lines"))
        add("garbage", stats.get("too_long"))
        add("garbage", stats.get("invalid"))
    elif "sightings" in stats:  # Wi-Fi presence: frames through the kernel filter
        add("ok", stats.get("frames"))
    return out
