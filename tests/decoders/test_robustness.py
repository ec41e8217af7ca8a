"""Random and mutated frames never raise; results are Readings or documented DecodeErrors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from decoders.reading import ERROR_CODES, DecodeError, Reading
from decoders.wmbus import WmbusDecoder, normalise_frame, peek_header
from decoders.wmbus.testing import mode5_frame, plain_frame, to_format_a, to_format_b, water_records

KEY = bytes(16)
SEEDS = [
    plain_frame("11223344", water_records(100, 50, 3)),
    mode5_frame("11223344", KEY, water_records(7)),
    bytes.fromhex("23442D2C998734761B168D2087D19EAD217F1779EDA86AB6710008190000081900007F13"),
    bytes.fromhex("1944304C72242421D401A2013D4013DD8B46A4999C1293E582CC"),
    bytes.fromhex("5344A5113322332263078C0085900F002C256C1601004BB24778D6AC091E7ADF003107102F2F0C13838600"
                  "0004FD17000000000A5A550002FD74EE114C1300020000426C3F3C84046D3B375F318C041374460000"),
]
DECODER = WmbusDecoder(keys={"11223344": KEY})


def _check(frame: bytes) -> None:
    result = DECODER.decode(frame)
    assert isinstance(result, (Reading, DecodeError))
    if isinstance(result, DecodeError):
        assert result.code in ERROR_CODES
    else:
        result.to_json()
    norm = normalise_frame(frame)
    assert isinstance(norm, (bytes, DecodeError))
    peek_header(frame)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(frame: bytes) -> None:
    _check(frame)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
       st.integers(0, 400))
def test_mutated_frames(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    frame = bytearray(seed)
    for pos, value in flips:
        if frame:
            frame[pos % len(frame)] = value
    _check(bytes(frame[: max(cut, 1)]))
    _check(bytes(frame))


def test_format_a_normalises_to_the_stripped_frame_short_format_b_stays() -> None:
    frame = plain_frame("11223344", water_records(100, 50, 3))
    assert normalise_frame(to_format_a(frame)) == frame
    # a short format B frame has the length of a stripped one: kept as it is (decode() falls back to B)
    assert normalise_frame(to_format_b(frame)) == to_format_b(frame)
    assert DECODER.decode(to_format_b(frame)) == DECODER.decode(frame)
    assert normalise_frame(frame) == frame
    assert normalise_frame(normalise_frame(to_format_a(frame))) == frame  # type: ignore[arg-type]
    broken = bytearray(to_format_a(frame))
    broken[14] ^= 0xFF
    bad = normalise_frame(bytes(broken))
    assert isinstance(bad, DecodeError) and bad.code == "bad_crc"
    assert peek_header(to_format_a(frame)) == ("11223344", "KAM")


def test_wired_long_frame() -> None:
    frame = bytes.fromhex("685656680800727537680001061507CCE800000C7875376800046D1DB458340413F73E0000023B0D004413"
                          "85010000426C41340227090203FD171C030004FF0A0404000002FF0B000003FF0C1300B20F00042C1B1B00"
                          "010200003716")
    result = WmbusDecoder().decode(frame)
    assert isinstance(result, Reading)
    assert result.meter_id == "00683775" and result.total_m3 == 16.119 and result.target_m3 == 0.389


def test_peek_header_uses_diehl_address_order() -> None:
    izar = bytes.fromhex("2944A511780729662366A20118001378D3B3DB8CEDD77731F25832AAF3DA8CADF9774EA673172E8C61F2")
    assert peek_header(izar) == ("66236629", "DME")
    assert peek_header(b"\x01") is None
