"""Link-layer checks, CRCs and the dedup window: pure functions, no I/O."""

from __future__ import annotations

import pytest
from ingest_testlib import with_block_crcs

from decoders.wmbus.crc import crc16_en13757
from ingest.dedup import Deduplicator
from ingest.dongles import amber, imst
from ingest.frames import ReceivedFrame, check_wmbus


def test_crc_check_values() -> None:
    # the catalogued check values of CRC-16/EN-13757 and CRC-16/X-25 over "123456789"
    assert crc16_en13757(b"123456789") == 0xC2B7
    assert imst.crc16_x25(b"123456789") == 0x906E


def test_check_wmbus(corpus_frames: list[bytes]) -> None:
    for frame in corpus_frames[:50]:
        assert check_wmbus(frame) == frame
        assert check_wmbus(with_block_crcs(frame)) == frame
        broken = bytearray(with_block_crcs(frame))
        broken[3] ^= 0x01
        assert check_wmbus(bytes(broken)) == "bad_crc"
        assert check_wmbus(frame[:-3]) == "truncated"
        assert check_wmbus(frame + b"\x00") == frame  # trailing bytes after L+1 are dropped, as the decoder does
    assert check_wmbus(b"\x05\x44") == "truncated"


def test_wire_format() -> None:
    f = ReceivedFrame(bytes.fromhex("0b44aabb"), 1732180000.101, -71)
    assert f.wire() == '{"t":1732180000.101,"hex":"0B44AABB","rssi":-71}'
    assert ReceivedFrame(b"\x01", 1.0).wire() == '{"t":1.0,"hex":"01"}'


def test_dedup_window_is_measured_on_receive_time() -> None:
    d = Deduplicator(window_s=30)
    t0 = 1_700_000_000.0
    assert d.is_new(b"A", t0)
    assert not d.is_new(b"A", t0 + 10)  # T1 repeat
    assert not d.is_new(b"A", t0 + 29.9)  # the repeat did not extend the window
    assert d.is_new(b"A", t0 + 30)  # one per window: downstream still sees the meter alive
    assert d.is_new(b"B", t0 + 31)
    # a 30-day replay in one go: same frame a day apart is new each time, whatever the wall clock says
    assert all(d.is_new(b"C", t0 + day * 86400) for day in range(30))
    assert len(d) <= 3


def test_dedup_disabled_and_bounded() -> None:
    assert all(Deduplicator(0).is_new(b"x", 1.0) for _ in range(3))
    d = Deduplicator(3600, max_entries=100)
    for i in range(1000):
        d.is_new(i.to_bytes(4, "big"), 1.0)
    assert len(d) == 100


@pytest.mark.parametrize("dbm", [-110, -90, -71, -40])
def test_rssi_round_trips(dbm: int) -> None:
    assert abs(imst.rssi_dbm(imst.rssi_raw(dbm)) - dbm) <= 1
    assert abs(amber.rssi_dbm(amber.rssi_raw(dbm)) - dbm) <= 1
