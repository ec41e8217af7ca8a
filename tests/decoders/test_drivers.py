"""Every driver's own test telegrams decode to their expected values."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from decoders.reading import Reading
from decoders.wmbus import WmbusDecoder, peek_header
from decoders.wmbus.drivers import ALL_DRIVERS, DriverSpec, Vector

PARAMS = [
    pytest.param(spec, vec, id=f"{spec.name}-{i}") for spec in ALL_DRIVERS for i, vec in enumerate(spec.vectors)
]


@pytest.mark.parametrize(("spec", "vector"), PARAMS)
def test_driver_vector(spec: DriverSpec, vector: Vector) -> None:
    tel = bytes.fromhex(vector.telegram_hex)
    keys: dict[str, bytes] = {}
    head = peek_header(tel)
    if vector.key_hex and head:
        keys[head[0]] = bytes.fromhex(vector.key_hex)
        if "id" in vector.expected:
            keys[vector.expected["id"]] = bytes.fromhex(vector.key_hex)
    dec = WmbusDecoder(keys=keys)
    for earlier in vector.preceding_hex:
        dec.decode(bytes.fromhex(earlier))
    result = dec.decode(tel)
    assert isinstance(result, Reading), result
    assert result.driver == spec.name
    out: dict[str, Any] = result.to_json()
    for name, want in vector.expected.items():
        if isinstance(want, float | int) and not isinstance(want, bool):
            assert abs(out[name] - want) <= 0.0005, (name, out.get(name), want)
        else:
            assert out[name] == want, (name, out.get(name), want)


def test_every_driver_has_vectors() -> None:
    """Data-only drivers too: a detection table nobody decoded once is a guess (evo868 never matched)."""
    names = [spec.name for spec in ALL_DRIVERS]
    assert len(names) == len(set(names))
    assert [spec.name for spec in ALL_DRIVERS if not spec.vectors] == []
    # each vector decodes with its own driver (test_driver_vector), so every detection entry set is exercised
    assert {p.values[0].name for p in PARAMS} == set(names)


def test_kamstrup_info_codes_become_alarm_words() -> None:
    from decoders.wmbus.testing import link_header

    body = link_header("11112222", "KAM", 0x1B, 0x16) + bytes.fromhex("78" "02FF200C00" "0413E8030000")
    frame = bytes([len(body)]) + body
    result = WmbusDecoder().decode(frame)
    assert isinstance(result, Reading), result
    assert result.driver == "multical21"
    assert result.alarms == ("leak", "burst")
    assert result.total_m3 == 1.0


def test_real32_nan_is_dropped() -> None:
    from decoders.wmbus.testing import link_header

    body = link_header("11112222", "ABC", 1, 0x07) + bytes.fromhex("78" "0513" "0000C07F" "0413E8030000")
    frame = bytes([len(body)]) + body
    result = WmbusDecoder().decode(frame)
    assert isinstance(result, Reading), result
    assert result.total_m3 == 1.0
    assert "nan" not in str(result.to_json()).lower()


def _hydrus_frame(records_hex: str, version: int = 0x70) -> bytes:
    from decoders.wmbus.testing import link_header

    body = link_header("12345678", "DME", version, 0x07) + bytes.fromhex("7A01000000") + bytes.fromhex(records_hex)
    return bytes([len(body)]) + body


STORAGE_1 = "0C1378563412" "4C1301000012" "426C4136"  # total, 4C13 target, 426C 2026-06-01 (OMS standard)


@pytest.mark.parametrize("version", [0x70, 0x76])
def test_hydrus_falls_back_to_the_standard_storage_1_records(version: int) -> None:
    result = WmbusDecoder().decode(_hydrus_frame(STORAGE_1, version))
    assert isinstance(result, Reading) and result.driver == "hydrus"
    assert (result.total_m3, result.target_m3, result.target_date) == (12345.678, 12000.001, date(2026, 6, 1))


def test_hydrus_own_storage_3_wins_over_storage_1() -> None:
    # CC0113: storage 3 volume (BCD 8) 1.234 m3; C2016C: storage 3 date 2025-12-31
    result = WmbusDecoder().decode(_hydrus_frame(STORAGE_1 + "CC011334120000" + "C2016C3F3C"))
    assert isinstance(result, Reading)
    assert (result.target_m3, result.target_date) == (1.234, date(2025, 12, 31))


def test_hydrus_fallback_value_and_date_come_from_the_same_storage() -> None:
    # a storage 3 date without a storage 3 value: the billing pair is storage 1's, not a mix
    result = WmbusDecoder().decode(_hydrus_frame(STORAGE_1 + "C2016C3F3C"))
    assert isinstance(result, Reading)
    assert (result.target_m3, result.target_date) == (12000.001, date(2026, 6, 1))
    # a storage 3 value without a date: that value, undated (storage 1's date is another billing period)
    result = WmbusDecoder().decode(_hydrus_frame(STORAGE_1 + "CC011334120000"))
    assert isinstance(result, Reading)
    assert (result.target_m3, result.target_date) == (1.234, None)
