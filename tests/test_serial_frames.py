"""The pure serial parsers: whole, byte by byte, wrapped in garbage, several per chunk."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.model import TokenFormat
from gateway.readers.serial.decode import make_decoder
from gateway.readers.serial.frames import (
    FRAME_LEN,
    ID12LA,
    MAX_LINE,
    RDM6300,
    CardFrame,
    Em4100Parser,
    LineParser,
    encode_em4100,
    encode_rdm6300,
)

# Written out by hand (not with encode_rdm6300) so the encoder is checked too:
# 0A^1B^2C^3D^4E = 4E; 62^00^E3^AF^47 = 69.
CARD_A = bytes.fromhex("0A1B2C3D4E")
FRAME_A = b"\x020A1B2C3D4E4E\x03"
CARD_B = bytes.fromhex("6200E3AF47")
FRAME_B = b"\x026200E3AF4769\x03"
GHOST = b"\x02000000000000\x03"


def feed_all(parser: Em4100Parser, chunks: Iterable[bytes]) -> list[CardFrame]:
    return [frame for chunk in chunks for frame in parser.feed(chunk)]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def accounted(parser: Em4100Parser) -> int:
    s = parser.stats
    return FRAME_LEN * (s.frames_ok + s.bad_checksum + s.ghost_ids) + s.garbage_bytes


# --- RDM6300 -------------------------------------------------------------------------


def test_encoder_matches_hand_written_frames() -> None:
    assert encode_rdm6300(CARD_A) == FRAME_A
    assert encode_rdm6300(CARD_B) == FRAME_B
    assert encode_rdm6300(CARD_A, lowercase=True) == FRAME_A.lower()
    with pytest.raises(ValueError, match="5 bytes"):
        encode_rdm6300(b"\x01\x02")


def test_whole_frame() -> None:
    parser = Em4100Parser()
    [frame] = parser.feed(FRAME_A)
    assert frame == CardFrame(CARD_A)
    assert frame.version == 0x0A
    assert frame.card_id == bytes.fromhex("1B2C3D4E")
    assert parser.stats.frames_ok == 1
    assert parser.stats.garbage_bytes == 0
    assert parser.pending == 0


def test_byte_by_byte() -> None:
    parser = Em4100Parser()
    assert feed_all(parser, bytewise(FRAME_A + FRAME_B)) == [CardFrame(CARD_A), CardFrame(CARD_B)]
    assert parser.pending == 0


def test_partial_frame_is_kept_between_calls() -> None:
    parser = Em4100Parser()
    assert parser.feed(FRAME_A[:9]) == []
    assert parser.pending == 9
    assert parser.feed(FRAME_A[9:]) == [CardFrame(CARD_A)]
    assert parser.pending == 0


def test_wrapped_in_garbage() -> None:
    parser = Em4100Parser()
    garbage = b"\xff\x00noise\x03\x0341"
    assert parser.feed(garbage + FRAME_A + garbage) == [CardFrame(CARD_A)]
    assert parser.stats.garbage_bytes == 2 * len(garbage)
    assert parser.stats.frames_ok == 1


def test_several_frames_per_chunk() -> None:
    parser = Em4100Parser()
    assert parser.feed(FRAME_A + FRAME_B + FRAME_A) == [
        CardFrame(CARD_A),
        CardFrame(CARD_B),
        CardFrame(CARD_A),
    ]
    assert parser.stats.frames_ok == 3


def test_bad_checksum_is_counted_and_skipped() -> None:
    parser = Em4100Parser()
    bad = FRAME_A[:11] + b"4F" + FRAME_A[13:]
    assert parser.feed(bad + FRAME_B) == [CardFrame(CARD_B)]
    assert parser.stats.bad_checksum == 1
    assert parser.stats.frames_ok == 1
    assert parser.stats.garbage_bytes == 0


def test_ghost_ids_are_dropped_and_counted() -> None:
    parser = Em4100Parser()
    # A version byte with an all-zero id is a ghost too: no card has id 0.
    ghost_with_version = encode_rdm6300(bytes.fromhex("0500000000"))
    assert parser.feed(GHOST + FRAME_A + ghost_with_version) == [CardFrame(CARD_A)]
    assert parser.stats.ghost_ids == 2
    assert parser.stats.frames_ok == 1


def test_lowercase_hex() -> None:
    parser = Em4100Parser()
    assert parser.feed(FRAME_A.lower() + FRAME_B.lower()) == [CardFrame(CARD_A), CardFrame(CARD_B)]


def test_truncated_frame_followed_by_a_good_one() -> None:
    parser = Em4100Parser()
    # The reader lost power mid-frame: the next STX proves the first one was cut off.
    assert parser.feed(FRAME_A[:7] + FRAME_B) == [CardFrame(CARD_B)]
    assert parser.stats.garbage_bytes == 7
    parser = Em4100Parser()
    assert feed_all(parser, bytewise(FRAME_A[:7] + FRAME_B)) == [CardFrame(CARD_B)]


def test_missing_etx_resynchronises() -> None:
    parser = Em4100Parser()
    no_etx = FRAME_A[:13] + b"Z"
    assert parser.feed(no_etx + FRAME_B) == [CardFrame(CARD_B)]
    assert parser.stats.garbage_bytes == len(no_etx)


def test_non_hex_inside_a_frame_resynchronises_without_waiting() -> None:
    parser = Em4100Parser()
    assert parser.feed(b"\x020A1G") == []
    # The G proves it is no frame: nothing is held back waiting for 14 bytes.
    assert parser.pending == 0
    assert parser.stats.garbage_bytes == 5


def test_reset_drops_a_partial_frame_as_garbage() -> None:
    parser = Em4100Parser()
    parser.feed(FRAME_A[:7])
    parser.reset()
    # Without the reset the tail would complete the old prefix into a frame.
    assert parser.feed(FRAME_A[7:]) == []
    assert parser.stats.garbage_bytes == len(FRAME_A)
    assert parser.feed(FRAME_B) == [CardFrame(CARD_B)]


def test_garbage_is_never_buffered() -> None:
    parser = Em4100Parser()
    for _ in range(1000):
        parser.feed(b"\x02\x02\x02" + b"0123456789ABCDEF" * 64)
        assert parser.pending <= FRAME_LEN - 1
    assert parser.feed(FRAME_A) == [CardFrame(CARD_A)]


raws = st.binary(min_size=5, max_size=5)
cards = raws.filter(lambda raw: any(raw[1:]))


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[bytes], bytes]:
    """Valid, non-ghost frames, some in lowercase."""
    ids = draw(st.lists(cards, max_size=20))
    lower = draw(st.lists(st.booleans(), min_size=len(ids), max_size=len(ids)))
    data = b"".join(encode_rdm6300(r, lowercase=lc) for r, lc in zip(ids, lower, strict=True))
    return ids, data


@given(streams(), st.data())
def test_any_split_yields_the_same_frames(
    stream: tuple[list[bytes], bytes], data: st.DataObject
) -> None:
    ids, payload = stream
    cuts = data.draw(st.lists(st.integers(0, len(payload)), max_size=30))
    parser = Em4100Parser()
    assert feed_all(parser, split_at(payload, cuts)) == [CardFrame(r) for r in ids]
    assert parser.stats.garbage_bytes == 0
    assert parser.pending == 0


@given(st.lists(st.binary(max_size=200), max_size=30))
def test_arbitrary_garbage_never_raises_and_stays_bounded(chunks: list[bytes]) -> None:
    parser = Em4100Parser()
    fed = 0
    for chunk in chunks:
        for frame in parser.feed(chunk):
            assert len(frame.raw) == 5
        fed += len(chunk)
        assert parser.pending <= FRAME_LEN - 1
        # Every byte is a frame's, garbage, or held for the next call: nothing is lost.
        assert accounted(parser) + parser.pending == fed


@given(
    st.lists(st.tuples(st.binary(max_size=40), cards), max_size=15),
    st.binary(max_size=40),
    st.data(),
)
def test_frames_embedded_in_garbage_without_stx_are_all_found(
    pieces: list[tuple[bytes, bytes]], trailer: bytes, data: st.DataObject
) -> None:
    payload = b""
    for junk, raw in pieces:
        payload += junk.replace(b"\x02", b"") + encode_rdm6300(raw)
    payload += trailer.replace(b"\x02", b"")
    cuts = data.draw(st.lists(st.integers(0, len(payload)), max_size=10))
    parser = Em4100Parser()
    assert feed_all(parser, split_at(payload, cuts)) == [CardFrame(raw) for _, raw in pieces]


# --- One token per line ---------------------------------------------------------------


@pytest.mark.parametrize("end", [b"\r", b"\n", b"\r\n"])
def test_line_endings(end: bytes) -> None:
    parser = LineParser()
    assert parser.feed(b"ABC123" + end + b"0014921543" + end) == ["ABC123", "0014921543"]
    assert parser.stats.lines_ok == 2


def test_lines_byte_by_byte_with_crlf_split_across_chunks() -> None:
    parser = LineParser()
    tokens = [t for b in bytewise(b"ABC123\r\nDEF456\r\n") for t in parser.feed(b)]
    assert tokens == ["ABC123", "DEF456"]
    assert parser.pending == 0


def test_line_without_end_waits_for_it() -> None:
    parser = LineParser()
    assert parser.feed(b"ABC") == []
    assert parser.feed(b"123") == []
    assert parser.feed(b"\n") == ["ABC123"]


def test_whitespace_stripped_and_empty_lines_skipped() -> None:
    parser = LineParser()
    assert parser.feed(b"\n\n  \t\n  ABC 123 \t\r\n\r\n") == ["ABC 123"]
    assert parser.stats.lines_ok == 1
    assert parser.stats.invalid == 0


def test_non_printable_and_non_utf8_lines_rejected() -> None:
    parser = LineParser()
    assert parser.feed(b"AB\x02CD\nOK1\n\xff\xfe\nZ\x00\nOK2\n") == ["OK1", "OK2"]
    assert parser.stats.invalid == 3


def test_over_long_line_in_one_chunk_is_dropped() -> None:
    parser = LineParser()
    assert parser.feed(b"X" * (MAX_LINE + 1) + b"\nOK\n") == ["OK"]
    assert parser.stats.too_long == 1


def test_line_of_exactly_the_cap_is_kept() -> None:
    parser = LineParser()
    assert parser.feed(b"X" * MAX_LINE + b"\n") == ["X" * MAX_LINE]


def test_endless_line_is_not_buffered_and_counted_once() -> None:
    parser = LineParser()
    for _ in range(1000):
        assert parser.feed(b"Y" * 100) == []
        assert parser.pending <= MAX_LINE
    # The rest of the over-long line is dropped up to its end; the next line is fine.
    assert parser.feed(b"YYY\nOK\n") == ["OK"]
    assert parser.stats.too_long == 1
    assert parser.stats.lines_ok == 1


def test_line_reset_drops_a_partial_line_and_ends_discarding() -> None:
    parser = LineParser(max_line=4)
    parser.feed(b"AB")
    parser.reset()
    assert parser.feed(b"CD\n") == ["CD"]
    parser.feed(b"123456")  # over-long: discarding until its end...
    parser.reset()  # ...which a new stream is
    assert parser.feed(b"OK\n") == ["OK"]


def test_line_parser_with_a_smaller_cap() -> None:
    parser = LineParser(max_line=4)
    assert parser.feed(b"12345\n1234\n") == ["1234"]
    assert parser.stats.too_long == 1


line_tokens = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
)


@given(
    st.lists(st.tuples(line_tokens, st.sampled_from([b"\r", b"\n", b"\r\n"])), max_size=20),
    st.data(),
)
def test_lines_any_split_yields_the_same_tokens(
    lines: list[tuple[str, bytes]], data: st.DataObject
) -> None:
    payload = b"".join(tok.encode() + end for tok, end in lines)
    cuts = data.draw(st.lists(st.integers(0, len(payload)), max_size=30))
    parser = LineParser()
    got = [t for chunk in split_at(payload, cuts) for t in parser.feed(chunk)]
    assert got == [tok for tok, _ in lines]


@given(st.lists(st.binary(max_size=300), max_size=30))
def test_lines_arbitrary_bytes_never_raise_and_stay_bounded(chunks: list[bytes]) -> None:
    parser = LineParser()
    for chunk in chunks:
        for token in parser.feed(chunk):
            assert token
            assert token.isprintable()
            assert token == token.strip()
            assert len(token.encode()) <= MAX_LINE
        assert parser.pending <= MAX_LINE


# --- Frames -> tokens -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "token"),
    [
        (TokenFormat.HEX, "6200E3AF47"),
        (TokenFormat.HEX_REVERSED, "47AFE30062"),
        # The printed number on an EM4100 card: the 4 id bytes, not the version byte.
        (TokenFormat.DECIMAL, "0014921543"),
        (TokenFormat.DECIMAL_REVERSED, "1202709248"),
        (TokenFormat.WIEGAND26, "227,44871"),
    ],
)
def test_rdm6300_tokens_in_each_format(fmt: TokenFormat, token: str) -> None:
    decoder = make_decoder("rdm6300", fmt)
    assert decoder.feed(GHOST + FRAME_B + b"junk") == [token]
    counts = decoder.counts()
    assert (counts.ok, counts.bad, counts.ghosts, counts.garbage_bytes) == (1, 0, 1, 4)


def test_line_decoder_passes_tokens_verbatim() -> None:
    decoder = make_decoder("line", TokenFormat.DECIMAL)
    assert decoder.feed(b"abc-123\n\x01\n") == ["abc-123"]
    assert decoder.counts().bad == 1


# --- ID-12LA / ID-20LA: CR LF before ETX ------------------------------------------------

# The bytes, written out: STX "1F00C0FFEE" "CE" CR LF ETX; 1F^00^C0^FF^EE = CE.
ID12_FRAME = bytes.fromhex("02 31 46 30 30 43 30 46 46 45 45 43 45 0D 0A 03")
ID12_CARD = bytes.fromhex("1F00C0FFEE")


def id12_accounted(parser: Em4100Parser) -> int:
    s = parser.stats
    return ID12LA.frame_len * (s.frames_ok + s.bad_checksum + s.ghost_ids) + s.garbage_bytes


def test_id12la_frame_whole() -> None:
    assert ID12LA.frame_len == len(ID12_FRAME) == 16
    assert encode_em4100(ID12_CARD, ID12LA) == ID12_FRAME
    parser = Em4100Parser(ID12LA)
    (frame,) = parser.feed(ID12_FRAME)
    assert frame.raw == ID12_CARD
    assert parser.stats.frames_ok == 1 and parser.pending == 0
    decoder = make_decoder("id12la", TokenFormat.HEX)
    assert decoder.feed(ID12_FRAME) == ["1F00C0FFEE"]


def test_id12la_byte_by_byte() -> None:
    parser = Em4100Parser(ID12LA)
    frames = []
    for i, b in enumerate(bytewise(ID12_FRAME)):
        frames += parser.feed(b)
        # Held back as a frame in progress until ETX, through the CR and the LF.
        assert parser.pending == (i + 1) % 16
    assert [f.raw for f in frames] == [ID12_CARD]
    assert parser.stats.garbage_bytes == 0


def test_id12la_wrapped_in_garbage_and_several_per_chunk() -> None:
    other = encode_em4100(CARD_B, ID12LA)
    stream = b"\xff\x00noise\x02" + ID12_FRAME + b"\r\n\x03" + other + ID12_FRAME + b"xx"
    parser = Em4100Parser(ID12LA)
    assert [f.raw for f in parser.feed(stream)] == [ID12_CARD, CARD_B, ID12_CARD]
    assert parser.stats.garbage_bytes == 8 + 3 + 2
    assert id12_accounted(parser) + parser.pending == len(stream)


@given(st.lists(st.integers(0, 80), max_size=12))
def test_id12la_any_split_yields_the_same_frames(cuts: list[int]) -> None:
    stream = b"\x03junk" + ID12_FRAME + encode_em4100(CARD_A, ID12LA, lowercase=True) + b"\x02"
    parser = Em4100Parser(ID12LA)
    frames = [
        f.raw
        for chunk in split_at(stream, [c % len(stream) for c in cuts])
        for f in parser.feed(chunk)
    ]
    assert frames == [ID12_CARD, CARD_A]
    assert id12_accounted(parser) + parser.pending == len(stream)


def test_each_layout_drops_the_other_as_garbage() -> None:
    # What the issue saw: the rdm6300 parser drops ID-12LA frames (and the other way
    # round); the garbage watch uses this to name the right protocol.
    rdm = Em4100Parser(RDM6300)
    assert rdm.feed(ID12_FRAME) == []
    assert rdm.stats.garbage_bytes == 16
    id12 = Em4100Parser(ID12LA)
    assert id12.feed(FRAME_A) == []
    assert id12.stats.garbage_bytes == 14


def test_id12la_bad_checksum_and_broken_trailer_are_not_frames() -> None:
    parser = Em4100Parser(ID12LA)
    bad = bytearray(ID12_FRAME)
    bad[12] = ord("F")  # checksum CF instead of CE
    no_lf = ID12_FRAME[:14] + b"\r\x03"
    assert parser.feed(bytes(bad) + no_lf + ID12_FRAME) == [CardFrame(ID12_CARD)]
    assert (parser.stats.frames_ok, parser.stats.bad_checksum) == (1, 1)
    assert parser.stats.garbage_bytes == len(no_lf)
