"""The Wiegand decoder on bits, and the frame splitter on timestamped edges (pure)."""

from __future__ import annotations

import random

import pytest
from structlog.testing import capture_logs

from gateway.readers.wiegand.formats import (
    FORMATS,
    H10301,
    H10302,
    H10304,
    H10306,
    Card,
    Key,
    Rejected,
    Rejection,
    decode,
    encode,
    formats_for,
)
from gateway.readers.wiegand.frames import FRAME_GAP_NS, Frame, FrameSplitter
from gateway.readers.wiegand.session import (
    WiegandSession,
    WiegandTokenFormat,
    format_card,
)

AUTO = formats_for("auto")
MS = 1_000_000


def bits(text: str) -> tuple[int, int]:
    text = text.replace(" ", "")
    return int(text, 2), len(text)


# --- the formats, bit by bit ---------------------------------------------------------


def test_h10301_by_hand() -> None:
    # Facility 1, card 1. Bits 1-12 hold one 1: the even parity bit is 1. Bits 13-24
    # hold one 1: already odd, the odd parity bit is 0.
    frame = bits("1 00000001 0000000000000001 0")
    assert decode(*frame, AUTO) == Card(H10301, 1, 1, (1 << 16) | 1)
    assert encode(H10301, 1, 1) == frame[0]


def test_h10301_parity_each_bit() -> None:
    # Facility 123, card 45678: bits 1-12 hold nine ones (even parity 1), bits 13-24 six
    # (odd parity 1).
    value, length = bits("1 01111011 1011001001101110 1")
    assert decode(value, length, AUTO) == Card(H10301, 123, 45678, (123 << 16) | 45678)
    assert encode(H10301, 123, 45678) == value
    for i in range(length):  # any single flipped bit breaks a parity: dropped
        result = decode(value ^ (1 << i), length, AUTO)
        assert result == Rejected(Rejection.PARITY, 26), i


def test_h10301_parity_ranges_are_bits_1_to_12_and_13_to_24() -> None:
    # Two flips inside the even half keep both parities: the ranges are the standard's.
    value, length = bits("1 01111011 1011001001101110 1")
    flipped = value ^ (1 << (25 - 1)) ^ (1 << (25 - 12))  # bits 1 and 12
    assert isinstance(decode(flipped, length, AUTO), Card)
    straddling = value ^ (1 << (25 - 12)) ^ (1 << (25 - 13))  # bits 12 and 13
    # Both parities broken is what swapped lines look like (the complement decodes): one
    # such frame is dropped as SWAPPED; only a run of them is reported (the session).
    assert decode(straddling, length, AUTO) == Rejected(Rejection.SWAPPED, 26)


def test_h10306_by_hand() -> None:
    # Facility 0x8001 (two ones: even parity 0), card 0x0007 (three ones: odd parity 0).
    frame = bits("0 1000000000000001 0000000000000111 0")
    assert decode(*frame, AUTO) == Card(H10306, 0x8001, 7, (0x8001 << 16) | 7)
    frame = bits("1 1000000000000011 0000000000000011 1")  # 3 ones -> 1; 2 ones -> 1
    assert decode(*frame, AUTO) == Card(H10306, 0x8003, 3, (0x8003 << 16) | 3)


def test_37_bits_h10304_and_h10302_share_bits_and_parity() -> None:
    # Facility 1, card 1 as H10304: bits 1-16 = 1, bits 17-35 = 1. Bits 1-18 hold one 1
    # (bit 16): even parity 1. Bits 18-35 hold one 1 (bit 35): odd already, parity 0.
    text = "1 0000000000000001 0000000000000000001 0"
    frame = bits(text)
    assert decode(*frame, AUTO) == Card(H10304, 1, 1, (1 << 19) | 1)
    assert decode(*frame, formats_for("h10302")) == Card(H10302, None, (1 << 19) | 1, (1 << 19) | 1)
    assert encode(H10304, 1, 1) == frame[0] == encode(H10302, 0, (1 << 19) | 1)
    # Bit 18 is in both ranges: flipping it breaks both parities at once (dropped; it
    # looks like swapped lines, see above); a bit in one range breaks one.
    value, length = frame
    assert decode(value ^ (1 << (36 - 18)), length, AUTO) == Rejected(Rejection.SWAPPED, 37)
    assert decode(value ^ (1 << (36 - 17)), length, AUTO) == Rejected(Rejection.PARITY, 37)
    assert decode(value ^ (1 << (36 - 19)), length, AUTO) == Rejected(Rejection.PARITY, 37)


@pytest.mark.parametrize("layout", list(FORMATS.values()), ids=list(FORMATS))
def test_encode_decode_round_trip(layout: object) -> None:
    assert layout in FORMATS.values()
    fmt = FORMATS[layout.name]  # type: ignore[attr-defined]
    rng = random.Random(fmt.length)
    for _ in range(200):
        facility = rng.randrange(1 << fmt.facility.width) if fmt.facility else 0
        number = rng.randrange(1 << fmt.card.width)
        result = decode(encode(fmt, facility, number), fmt.length, (fmt,))
        assert isinstance(result, Card)
        assert (result.facility, result.number) == ((facility if fmt.facility else None), number)


@pytest.mark.parametrize("length", [5, 25, 27, 33, 35, 36, 38, 48, 64])
def test_wrong_length_is_dropped(length: int) -> None:
    assert decode(0, length, AUTO) == Rejected(Rejection.WRONG_LENGTH, length)


def test_configured_formats_only() -> None:
    frame = encode(H10306, 5, 6)
    assert decode(frame, 34, formats_for("26")) == Rejected(Rejection.WRONG_LENGTH, 34)
    assert isinstance(decode(frame, 34, formats_for(("26", "34"))), Card)
    with pytest.raises(ValueError, match="unknown Wiegand format '35'"):
        formats_for("35")
    with pytest.raises(ValueError, match="H10302 and H10304 are both 37 bits"):
        formats_for(("h10302", "37"))


@pytest.mark.parametrize("length", [1, 2, 3])
def test_power_up_pulse_is_noise(length: int) -> None:
    assert decode(1, length, AUTO) == Rejected(Rejection.NOISE, length)


def test_too_long() -> None:
    assert decode(0, 65, AUTO) == Rejected(Rejection.TOO_LONG, 65)


@pytest.mark.parametrize(("nibble", "key"), [(0, "0"), (7, "7"), (9, "9"), (10, "*"), (11, "#")])
def test_keypad_4_and_8_bit(nibble: int, key: str) -> None:
    assert decode(nibble, 4, AUTO) == Key(key)
    assert decode(((nibble ^ 0xF) << 4) | nibble, 8, AUTO) == Key(key)


def test_bad_keys() -> None:
    assert decode(12, 4, AUTO) == Rejected(Rejection.BAD_KEY, 4)
    assert decode(0x15, 8, AUTO) == Rejected(Rejection.BAD_KEY, 8)  # high nibble not ~low


@pytest.mark.parametrize("layout", [H10301, H10306, H10304], ids=lambda f: f.name)
def test_swapped_lines_are_recognised(layout: object) -> None:
    fmt = FORMATS[layout.name]  # type: ignore[attr-defined]
    rng = random.Random(7)
    for _ in range(100):
        facility = rng.randrange(1 << fmt.facility.width) if fmt.facility else 0
        frame = encode(fmt, facility, rng.randrange(1 << fmt.card.width))
        swapped = frame ^ ((1 << fmt.length) - 1)
        assert decode(swapped, fmt.length, AUTO) == Rejected(Rejection.SWAPPED, fmt.length)


# --- token formats ---------------------------------------------------------------------


def test_token_formats() -> None:
    card = decode(encode(H10301, 123, 4567), 26, AUTO)
    assert isinstance(card, Card)
    assert format_card(card, WiegandTokenFormat.FACILITY_CARD) == "123,04567"
    assert format_card(card, WiegandTokenFormat.DECIMAL) == str((123 << 16) | 4567).zfill(10)
    assert format_card(card, WiegandTokenFormat.HEX) == "7B11D7"
    card34 = decode(encode(H10306, 7, 9), 34, AUTO)
    assert isinstance(card34, Card)
    assert format_card(card34, WiegandTokenFormat.FACILITY_CARD) == "00007,00009"
    assert format_card(card34, WiegandTokenFormat.HEX) == "00070009"
    card37 = decode(encode(H10304, 300, 500_000), 37, AUTO)
    assert isinstance(card37, Card)
    assert format_card(card37, WiegandTokenFormat.FACILITY_CARD) == "00300,500000"
    assert format_card(card37, WiegandTokenFormat.HEX) == format((300 << 19) | 500_000, "09X")
    plain = decode(encode(H10302, 0, 12345678901), 37, formats_for("h10302"))
    assert isinstance(plain, Card)
    assert format_card(plain, WiegandTokenFormat.FACILITY_CARD) == "12345678901"


# --- edges -> frames -------------------------------------------------------------------


def edges(
    value: int, length: int, start_ns: int, spacing_ns: int, seq: int = 1
) -> list[tuple[int, int, int]]:
    return [
        ((value >> (length - 1 - i)) & 1, start_ns + i * spacing_ns, seq + i) for i in range(length)
    ]


def split(events: list[tuple[int, int, int]], end_ns: int) -> list[Frame]:
    splitter = FrameSplitter()
    frames = [f for e in events if (f := splitter.feed(*e)) is not None]
    last = splitter.flush(end_ns)
    return frames + ([last] if last else [])


def test_two_frames_split_on_a_25ms_gap() -> None:
    a, b = encode(H10301, 1, 2), encode(H10306, 3, 4)
    first = edges(a, 26, 1_000 * MS, 2 * MS)
    second = edges(b, 34, first[-1][1] + FRAME_GAP_NS, 2 * MS, seq=27)
    frames = split(first + second, second[-1][1] + FRAME_GAP_NS)
    assert [(f.value, f.length, f.overflow) for f in frames] == [(a, 26, False), (b, 34, False)]
    assert frames[0].bits() == format(a, "026b")


def test_bits_up_to_20ms_apart_with_jitter_stay_one_frame() -> None:
    rng = random.Random(3)
    value = encode(H10304, 77, 123_456)
    t, events = 5_000 * MS, []
    for i in range(37):
        t += rng.choice([200_000, 2 * MS, 20 * MS]) + rng.randrange(-100_000, 100_000)
        events.append(((value >> (36 - i)) & 1, t, i + 1))
    (frame,) = split(events, t + FRAME_GAP_NS)
    assert (frame.value, frame.length, frame.overflow) == (value, 37, False)


def test_the_frame_ends_only_after_the_full_gap() -> None:
    splitter = FrameSplitter()
    for e in edges(0b1010, 4, 0, MS):
        assert splitter.feed(*e) is None
    last = 3 * MS
    assert splitter.deadline_ns() == last + FRAME_GAP_NS
    assert splitter.flush(last + FRAME_GAP_NS - 1) is None
    frame = splitter.flush(last + FRAME_GAP_NS)
    assert frame is not None and (frame.value, frame.length) == (0b1010, 4)
    assert splitter.deadline_ns() is None and splitter.flush(10**12) is None


def test_sequence_gap_discards_the_frame_and_the_next_starts_clean() -> None:
    a = edges(encode(H10301, 1, 2), 26, 0, MS)
    del a[10]  # the kernel's queue overflowed: one edge (seq 11) never reached us
    b = edges(encode(H10301, 5, 6), 26, 200 * MS, MS, seq=27)
    frames = split(a + b, 400 * MS)
    assert [(f.length, f.overflow) for f in frames] == [(25, True), (26, False)]


def test_a_gap_between_frames_discards_both_sides() -> None:
    a = edges(encode(H10301, 1, 2), 26, 0, MS)
    b = edges(encode(H10301, 5, 6), 26, 200 * MS, MS, seq=28)  # seq 27 lost in the gap
    frames = split(a + b, 400 * MS)
    assert [f.overflow for f in frames] == [True, True]


def test_bits_queued_out_of_order_are_put_back_in_the_kernels_order() -> None:
    # D0's and D1's edges are queued by two interrupt threads: one running late puts
    # its edge behind the other line's later one (seen in the test VM: seq 10 before 9).
    value = encode(H10301, 12, 3456)
    a = edges(value, 26, 0, 2 * MS)
    i = next(i for i in range(8, 25) if a[i][0] != a[i + 1][0])  # one bit on each line
    a[i], a[i + 1] = a[i + 1], a[i]
    frames = split(a, 100 * MS)
    assert [(f.value, f.length, f.overflow) for f in frames] == [(value, 26, False)]


def test_a_frames_first_bit_queued_late_costs_the_frame_before() -> None:
    # The next frame's second edge arrives first: until its first comes, the missing
    # number could be the last bit of the frame before, which is discarded (never
    # guessed); the next frame itself is whole once its first edge arrives.
    a = edges(encode(H10301, 1, 2), 26, 0, MS)
    b = edges(encode(H10301, 192, 6), 26, 200 * MS, MS, seq=27)
    assert (b[0][0], b[1][0]) == (0, 1)  # one on each line
    b[0], b[1] = b[1], b[0]
    frames = split(a + b, 400 * MS)
    assert [(f.length, f.overflow) for f in frames] == [(26, True), (26, False)]
    assert frames[1].value == encode(H10301, 192, 6)


def test_an_edge_overwritten_in_the_kernel_is_lost_for_good() -> None:
    # A line's second edge before its interrupt thread queued the first: the kernel
    # numbered both but queues only the later one.
    a = edges(encode(H10301, 1, 2), 26, 0, MS)
    del a[4]
    (frame,) = split(a, 100 * MS)
    assert (frame.length, frame.overflow) == (25, True)


def test_a_straggler_of_a_finished_frame_is_not_glued_to_the_next() -> None:
    a = edges(encode(H10301, 1, 2), 26, 0, MS)
    late, a = a[20], a[:20] + a[21:]
    b = edges(encode(H10301, 5, 6), 26, 200 * MS, MS, seq=27)
    frames = split([*a, b[0], late, *b[1:]], 400 * MS)  # after the next frame began
    assert [(f.length, f.overflow) for f in frames] == [(25, True), (26, False)]


def test_overlong_frames_are_counted_not_kept() -> None:
    events = [(1, i * MS, i + 1) for i in range(80)]
    (frame,) = split(events, 200 * MS)
    assert frame.length == 80
    assert decode(frame.value, frame.length, AUTO) == Rejected(Rejection.TOO_LONG, 80)


# --- frames -> tokens --------------------------------------------------------------------


def frame_of(value: int, length: int, at_ns: int = 0, *, overflow: bool = False) -> Frame:
    return Frame(value, length, at_ns, at_ns, overflow)


def test_session_counts_every_drop_and_never_taps_one() -> None:
    s = WiegandSession("r", AUTO, WiegandTokenFormat.FACILITY_CARD)
    good = encode(H10301, 12, 345)
    assert s.frame(frame_of(1, 1)) is None  # power-up pulse
    assert s.frame(frame_of(good ^ 1, 26)) is None  # parity
    assert s.frame(frame_of(0, 30)) is None  # length
    assert s.frame(frame_of(good, 26, overflow=True)) is None
    assert s.frame(frame_of(good, 26)) == "012,00345"
    stats = s.stats
    assert stats.cards == 1
    assert stats.rejected == {"noise": 1, "parity": 1, "wrong-length": 1, "overflow": 1}


def test_session_reports_swapped_lines_with_the_fix() -> None:
    s = WiegandSession("r", AUTO, WiegandTokenFormat.DECIMAL)
    swapped = encode(H10301, 9, 99) ^ ((1 << 26) - 1)
    with capture_logs() as logs:
        assert s.frame(frame_of(swapped, 26)) is None
        assert not [e for e in logs if e["event"] == "wiegand_lines_swapped"]
        assert s.frame(frame_of(swapped, 26)) is None
        assert s.frame(frame_of(swapped, 26)) is None
    (report,) = [e for e in logs if e["event"] == "wiegand_lines_swapped"]
    assert report["log_level"] == "error"
    assert "Swap d0_line and d1_line" in report["hint"]
    assert s.stats.swapped_suspected and s.stats.rejected == {"swapped": 3}


def test_keypad_keys_are_ignored_by_default() -> None:
    s = WiegandSession("r", AUTO, WiegandTokenFormat.DECIMAL)
    assert [s.frame(frame_of(k, 4)) for k in (1, 2, 3, 11)] == [None] * 4
    assert s.stats.keys == 4 and s.stats.pins == 0


def test_keypad_pin_ends_with_hash() -> None:
    s = WiegandSession("r", AUTO, WiegandTokenFormat.DECIMAL, keypad=True)
    keys = [1, 2, 10, 4, 2, 4, 2, 11]  # "12", "*" clears, "4242", "#"
    out = [s.frame(frame_of(((k ^ 0xF) << 4) | k, 8, i * 300 * MS)) for i, k in enumerate(keys)]
    assert out == [None] * 7 + ["4242"]
    # A pause over the PIN timeout forgets the digits typed before it.
    s.frame(frame_of(7, 4, 10_000 * MS))
    assert s.frame(frame_of(5, 4, 21_000 * MS)) is None
    assert s.frame(frame_of(11, 4, 21_500 * MS)) == "5"
    assert s.frame(frame_of(11, 4, 22_000 * MS)) is None  # "#" alone is no PIN
