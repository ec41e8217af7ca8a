"""Compact frames: learned from full frames, persisted, and reported when never seen."""

from __future__ import annotations

from pathlib import Path

from decoders.reading import DecodeError, Reading
from decoders.wmbus import WmbusDecoder
from decoders.wmbus.crc import crc16_en13757
from decoders.wmbus.testing import link_header

FULL_RECORDS = bytes.fromhex("0413" "10270000" "4413" "E8030000" "023B" "0500")
FORMAT = bytes.fromhex("0413" "4413" "023B")


def _frame(body: bytes) -> bytes:
    raw = link_header("55667788", "ABC", 1, 7) + body
    return bytes([len(raw)]) + raw


def test_learn_persist_and_decode_compact(tmp_path: Path) -> None:
    sig = crc16_en13757(FORMAT).to_bytes(2, "little")
    compact = _frame(b"\x79" + sig + b"\x00\x00" + bytes.fromhex("11270000" "E9030000" "0600"))
    cache = tmp_path / "sig.json"
    dec = WmbusDecoder(signature_cache=cache)
    unknown = dec.decode(compact)
    assert isinstance(unknown, DecodeError) and unknown.code == "unknown_format_signature"
    assert isinstance(dec.decode(_frame(b"\x78" + FULL_RECORDS)), Reading)
    dec.save()
    fresh = WmbusDecoder(signature_cache=cache)
    result = fresh.decode(compact)
    assert isinstance(result, Reading), result
    assert result.total_m3 == 10.001 and result.target_m3 == 1.001 and result.flow_m3h == 0.006


def test_known_kamstrup_formats_have_their_published_signatures() -> None:
    from decoders.wmbus.compact import signature_of
    from decoders.wmbus.drivers.kamstrup import KNOWN_FORMATS

    published = {0xA8ED, 0xC412, 0x61EB, 0xD2F7, 0xDD34, 0x7C0E, 0x0905}
    sigs = {signature_of(bytes.fromhex(f)) for f in KNOWN_FORMATS}
    assert published <= sigs
