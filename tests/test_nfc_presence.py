"""The pure parts of the NFC reader: presence, random UIDs, NDEF text tokens."""

from __future__ import annotations

import ndef
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.readers.nfc.ndeftext import MAX_TOKEN_LENGTH, text_token
from gateway.readers.nfc.presence import RANDOM_KEY, CardPresence, card_key

A = bytes.fromhex("04a1b2c3d4e5f6")
B = bytes.fromhex("0badcafe")
LIFT = 1.0


def rounds(p: CardPresence, seq: list[tuple[float, bytes | None]]) -> list[bytes]:
    """Feed (time, key) rounds; return the arrivals."""
    return [key for t, key in seq if p.observe(key, t) and key is not None]


def test_resting_card_is_one_arrival() -> None:
    p = CardPresence(LIFT)
    # A card held for ten seconds, one round every 0.15 s.
    assert rounds(p, [(i * 0.15, A) for i in range(67)]) == [A]


def test_missed_rounds_while_resting_do_not_count_as_lifting() -> None:
    p = CardPresence(LIFT)
    seq = [(0.0, A), (0.15, None), (0.3, None), (0.45, A), (0.6, None), (1.5, A)]
    assert rounds(p, seq) == [A]


def test_lift_for_a_second_then_tap_again_is_two_arrivals() -> None:
    p = CardPresence(LIFT)
    seq = [(0.0, A), (0.5, A), (1.0, None), (1.5, None), (1.6, A)]  # absent 1.1 s
    assert rounds(p, seq) == [A, A]


def test_short_lift_is_not_a_new_tap() -> None:
    p = CardPresence(LIFT)
    assert rounds(p, [(0.0, A), (0.5, None), (0.9, A)]) == [A]


def test_absence_must_be_observed_not_just_elapsed() -> None:
    # No rounds ran for 30 s (the reader was being reopened): the card still rests.
    p = CardPresence(LIFT)
    assert rounds(p, [(0.0, A), (30.0, A)]) == [A]


def test_a_different_card_arrives_at_once_and_lifts_the_first() -> None:
    p = CardPresence(LIFT)
    seq = [(0.0, A), (0.2, B), (0.4, B), (1.3, B), (1.5, A)]
    assert rounds(p, seq) == [A, B, A]  # at 1.3 A had been absent >= 1 s


def test_no_card_is_never_an_arrival() -> None:
    p = CardPresence(LIFT)
    assert rounds(p, [(i * 1.0, None) for i in range(5)]) == []
    assert p.resting() == frozenset()


def test_forget_makes_the_next_sighting_an_arrival() -> None:
    p = CardPresence(LIFT)
    assert p.observe(A, 0.0)
    p.forget(A)
    assert p.observe(A, 0.1)
    p.forget(B)  # unknown: no error


def test_negative_lift_time_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        CardPresence(-1)


def test_random_uids_share_one_key_real_ones_do_not() -> None:
    assert card_key(bytes.fromhex("08123456")) == RANDOM_KEY
    assert card_key(bytes.fromhex("08aabbcc")) == RANDOM_KEY
    assert card_key(bytes.fromhex("04123456")) == bytes.fromhex("04123456")
    # Only 4-byte NFCID1s have the random form; a 7-byte UID starting 08 is fixed.
    assert card_key(bytes.fromhex("08112233445566")) == bytes.fromhex("08112233445566")


def _reference(seq: list[tuple[float, bytes | None]], lift: float) -> list[bytes]:
    """CardPresence spelled out: an arrival is a sighting with no earlier sighting, or
    with a round without the card at least ``lift`` after the last sighting."""
    out = []
    for i, (_t, key) in enumerate(seq):
        if key is None:
            continue
        before = [j for j in range(i) if seq[j][1] == key]
        if not before:
            out.append(key)
            continue
        last = seq[before[-1]][0]
        if any(seq[j][1] != key and seq[j][0] - last >= lift for j in range(before[-1] + 1, i)):
            out.append(key)
    return out


@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=2.5, allow_nan=False),
            st.sampled_from([None, A, B]),
        ),
        max_size=60,
    )
)
def test_presence_matches_its_definition(steps: list[tuple[float, bytes | None]]) -> None:
    t = 0.0
    seq = []
    for dt, key in steps:
        t += dt
        seq.append((t, key))
    assert rounds(CardPresence(LIFT), seq) == _reference(seq, LIFT)


# -- NDEF text tokens ------------------------------------------------------------------


def _records(data: bytes) -> list[object]:
    return list(ndef.message_decoder(data, errors="relax"))


def test_text_record_is_the_token() -> None:
    msg = b"".join(ndef.message_encoder([ndef.TextRecord("  member-42 \n")]))
    assert text_token(_records(msg)) == "member-42"


def test_first_usable_text_record_wins_and_others_are_skipped() -> None:
    records = [
        ndef.UriRecord("https://example.org/me"),
        ndef.TextRecord("   "),
        ndef.TextRecord("bad\x00token"),
        ndef.TextRecord("x" * (MAX_TOKEN_LENGTH + 1)),
        ndef.TextRecord("tok-1"),
        ndef.TextRecord("tok-2"),
    ]
    assert text_token(records) == "tok-1"


def test_no_text_record_no_token() -> None:
    assert text_token([ndef.UriRecord("https://example.org")]) is None
    assert text_token([]) is None
    assert text_token([object(), "not a record"]) is None


@given(st.binary(max_size=200))
def test_garbage_ndef_never_raises(data: bytes) -> None:
    try:
        records = _records(data)
    except ndef.DecodeError:
        return
    token = text_token(records)
    assert token is None or (token.isprintable() and len(token) <= MAX_TOKEN_LENGTH)
