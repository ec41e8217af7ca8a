"""Link formats: CRC-stripped frames that look like format B, genuine format A/B, and decode(normalised=True)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from decoders.reading import DecodeError, Reading
from decoders.wmbus import WmbusDecoder, normalise_frame
from decoders.wmbus.crc import crc16_en13757
from decoders.wmbus.link import strip_format_b
from decoders.wmbus.testing import (
    link_header,
    mode5_frame,
    plain_frame,
    to_format_a,
    to_format_b,
    water_records,
)

KEY = bytes(range(16))
# A CRC-stripped ZRI mode-5 frame (long header) whose last two bytes happen to equal the format B CRC of
# the rest (the fleet simulator's, tests/fixtures/test_fleet_sim.py): 1 stripped frame in 65,536 does.
LOOKALIKE = bytes.fromhex("3644496a928704892a077292870489496a2a07d400200568f0da42282ef7b85073ee3baff4036d7981fa50"
                          "123ba60f9e4a5e7203c825b5")
LOOKALIKE_KEYS = {"89048792": bytes.fromhex("580116c1f06b8e7542d366d12155d34a")}
LOOKALIKE_READING = Reading(
    meter_id="89048792", manufacturer="ZRI", version=0x2A, device_type="water", driver="generic",
    total_m3=561.862, target_m3=559.685, target_date=date(2026, 6, 1), flow_m3h=None,
    meter_time=datetime(2026, 6, 3, 21, 15, tzinfo=UTC), status="OK", alarms=(), fields={"error_flags": 0})


def test_the_lookalike_really_looks_like_format_b() -> None:
    assert crc16_en13757(LOOKALIKE[:-2]) == int.from_bytes(LOOKALIKE[-2:], "big")
    assert strip_format_b(LOOKALIKE) == bytes([LOOKALIKE[0] - 2]) + LOOKALIKE[1:-2]


@pytest.mark.parametrize("normalised", [False, True])
def test_stripped_lookalike_decodes_as_it_is(normalised: bool) -> None:
    frame = normalise_frame(LOOKALIKE) if normalised else LOOKALIKE
    assert isinstance(frame, bytes)
    assert WmbusDecoder(LOOKALIKE_KEYS).decode(frame, normalised=normalised) == LOOKALIKE_READING


def test_normalise_frame_keeps_an_l_plus_1_frame_as_it_is() -> None:
    assert normalise_frame(LOOKALIKE) == LOOKALIKE  # not cut to its first L-1 bytes any more
    plain = plain_frame("11223344", water_records(100, 50, 3))
    genuine_b = to_format_b(plain)
    assert normalise_frame(genuine_b) == genuine_b  # undecidable from the bytes: see decoders/README.md
    assert normalise_frame(to_format_a(plain)) == plain
    assert normalise_frame(plain) == plain
    assert normalise_frame(plain + b"\x99") == plain  # a trailing byte past L is still cut


@pytest.mark.parametrize("kind", ["plain", "mode5", "plain_long", "mode5_long"])
def test_genuine_format_b_decodes_like_its_stripped_frame(kind: str) -> None:
    records = water_records(123_456, 120_000, 42)
    if kind.endswith("_long"):  # > 125 bytes: format B with a CRC after byte 126 and one at the end
        records += b"\x0d\xfd\x11" + bytes([100]) + bytes(range(100))
    stripped = (plain_frame("11223344", records, acc=7) if kind.startswith("plain")
                else mode5_frame("11223344", KEY, records, acc=7))
    genuine_b = to_format_b(stripped)
    assert len(genuine_b) == genuine_b[0] + 1 and strip_format_b(genuine_b) == stripped
    # two CRCs (long) settle it; one CRC (short) does not, so the frame keeps its CRC for the digest
    assert normalise_frame(genuine_b) == (stripped if kind.endswith("_long") else genuine_b)
    keys = {} if kind.startswith("plain") else {"11223344": KEY}  # a keyed meter refuses plaintext
    want = WmbusDecoder(keys).decode(stripped)
    assert isinstance(want, Reading) and want.total_m3 == 123.456 and want.target_m3 == 120.0
    assert "trailing_data_error" not in want.fields
    for normalised in (False, True):
        assert WmbusDecoder(keys).decode(genuine_b, normalised=normalised) == want


def test_format_b_fallback_keeps_the_error_of_the_frame_as_it_is() -> None:
    # neither reading validates (no key): the as-is error is reported
    frame = to_format_b(mode5_frame("11223344", KEY, water_records(1)))
    result = WmbusDecoder().decode(frame)
    assert isinstance(result, DecodeError) and result.code == "no_key" and result.meter_id == "11223344"


def _afl_fragment(meter_id: str, fcl: int, data: bytes) -> bytes:
    body = link_header(meter_id) + bytes([0x90, 0x02]) + fcl.to_bytes(2, "little") + data
    return bytes([len(body)]) + body


def test_format_b_last_fragment_is_reassembled_from_the_stored_fragments() -> None:
    tpl = bytes([0x7A, 0x05, 0x00, 0x00, 0x00]) + water_records(987_654, 900_000, 11)
    first = _afl_fragment("55667788", 0x4000, tpl[:10])  # more fragments, fragment 0
    last = _afl_fragment("55667788", 0x0001, tpl[10:])  # fragment 1, the last
    plain = WmbusDecoder()
    assert isinstance(plain.decode(first), DecodeError)
    want = plain.decode(last)
    assert isinstance(want, Reading) and want.total_m3 == 987.654 and want.target_m3 == 900.0
    dec = WmbusDecoder()
    pending = dec.decode(first)
    assert isinstance(pending, DecodeError) and pending.code == "fragment_pending"
    # the as-is attempt consumes the stored fragment, fails, and the format B attempt starts over from it
    assert dec.decode(to_format_b(last)) == want
    assert not dec._fragments


def test_wired_frames_with_and_without_normalised() -> None:
    frame = bytes.fromhex("685656680800727537680001061507CCE800000C7875376800046D1DB458340413F73E0000023B0D004413"
                          "85010000426C41340227090203FD171C030004FF0A0404000002FF0B000003FF0C1300B20F00042C1B1B00"
                          "010200003716")
    dec = WmbusDecoder()
    norm = normalise_frame(frame + b"\x00")
    assert norm == frame
    a, b = dec.decode(frame + b"\x00"), dec.decode(norm, normalised=True)
    assert isinstance(a, Reading) and a == b and a.total_m3 == 16.119


def test_normalised_true_matches_the_default_path() -> None:
    frames = [plain_frame("11223344", water_records(5, 4, 3)), mode5_frame("11223344", KEY, water_records(9)),
              LOOKALIKE]
    frames += [to_format_a(f) for f in frames]
    keys = {"11223344": KEY, **LOOKALIKE_KEYS}
    for frame in frames:
        norm = normalise_frame(frame)
        assert isinstance(norm, bytes)
        assert WmbusDecoder(keys).decode(norm, normalised=True) == WmbusDecoder(keys).decode(frame)
