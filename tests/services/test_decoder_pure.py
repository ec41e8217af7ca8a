"""Pure parts of the decoder service: message -> rows, wmbusmeters mapping, registry CSV parsing."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from decoders.reading import ERROR_CODES, DecodeError, Reading
from decoders.wmbusmeters import status_alarms, to_reading
from fixtures import telegrams as omsgen
from meterflow.envelope import FrameBatch, encode_batch
from services.processor import FrameProcessor
from storage.registry import parse_keys_csv, parse_meters_csv

T0 = datetime(2026, 11, 2, tzinfo=UTC).timestamp()  # after the telegrams' meter clocks


def _message(frames: list[dict[str, object]], gw: str = "gw-01", kind: str = "wmbus") -> tuple[str, bytes]:
    return f"p/v1/{gw}/{kind}", encode_batch(FrameBatch(gw, kind, frames, f"{gw}:1:1", T0))


def _keys(n: int) -> dict[str, bytes]:
    return {omsgen.meter_id(i): omsgen.meter_key(omsgen.meter_id(i)) for i in range(n)}


def test_processor_decodes_a_batch_and_dead_letters_the_rest() -> None:
    tels = list(omsgen.fleet_telegrams(3, 6))
    keys = _keys(2)  # the third meter has no key
    frames: list[dict[str, object]] = [{"t": T0 + i, "hex": t.frame.hex(), "rssi": -70} for i, t in enumerate(tels)]
    frames.append({"t": T0, "hex": "zz-not-hex"})
    frames.append({"t": T0, "hex": "0102"})
    rows, dead = FrameProcessor(keys).process(*_message(frames)).split()
    decoded = [r for r in rows if r.decoded]
    assert len(decoded) == 4
    by_meter = {(r.meter_id, r.time) for r in decoded}
    assert by_meter == {(t.meter_id, t.time) for t in tels if t.meter_id != omsgen.meter_id(2)}
    assert all(r.gateway_id == "gw-01" and r.source == "wmbus" and r.rssi == -70 for r in decoded)
    codes = sorted(d.error_code for d in dead)
    assert codes.count("no_key") == 2 and "not_hex" in codes and len(codes) == 4
    assert all(c in ERROR_CODES for c in codes)
    no_key = [d for d in dead if d.error_code == "no_key"]
    assert {d.meter_id for d in no_key} == {omsgen.meter_id(2)}
    # the undecoded frames are archived too (decoded = false), keyed by the same digest
    assert {r.digest for r in rows if not r.decoded} == {d.digest for d in no_key}


def test_same_frame_from_two_gateways_has_one_digest() -> None:
    tel = next(omsgen.fleet_telegrams(1, 1))
    p = FrameProcessor(_keys(1))
    a, _ = p.process(*_message([{"t": T0, "hex": tel.frame.hex()}], "gw-a")).split()
    b, _ = p.process(*_message([{"t": T0 + 3, "hex": tel.frame.hex().upper()}], "gw-b")).split()
    assert a[0].digest == b[0].digest


@pytest.mark.parametrize("payload", [b"not json", b"[]", b'{"v": 9, "gw": "x", "kind": "wmbus", "frames": []}',
                                     b'{"v": 1, "gw": "x", "kind": "modbus", "frames": []}'])
def test_a_message_that_breaks_the_envelope_is_one_dead_letter(payload: bytes) -> None:
    rows, dead = FrameProcessor({}).process("p/v1/gw-9/wmbus", payload).split()
    assert rows == [] and len(dead) == 1
    assert dead[0].error_code == "bad_envelope" and dead[0].payload == payload and dead[0].gateway_id == "gw-9"


def test_modbus_frames_without_decoder_or_profile_are_dead_letters() -> None:
    topic, payload = _message([{"t": T0, "meter_id": "M1", "address": 0, "words": [1, 2]}], kind="modbus")
    rows, dead = FrameProcessor({}).process(topic, payload).split()
    assert len(dead) == 1 and dead[0].error_code == "bad_modbus" and dead[0].meter_id == "M1"
    assert rows[0].decoded is False


def test_modbus_frame_decodes_when_the_profile_exists() -> None:
    modbus = pytest.importorskip("decoders.modbus", reason="decoders.modbus (gateway engineer) not written yet")
    if "pulse_u32_litres" not in getattr(modbus, "PROFILES", {}):
        pytest.skip("decoders.modbus has no pulse_u32_litres profile")
    topic, payload = _message([{"t": T0, "meter_id": "M1", "profile": "pulse_u32_litres", "address": 0,
                                "words": [0x0012, 0xD687]},
                               {"t": T0, "meter_id": "M2", "profile": "no-such-profile", "address": 0,
                                "words": [1, 2]}], kind="modbus")
    rows, dead = FrameProcessor({}).process(topic, payload).split()
    assert rows[0].decoded is True and rows[0].meter_id == "M1" and rows[0].total_m3 == pytest.approx(1234.567)
    assert rows[0].time == datetime.fromtimestamp(T0, UTC) and rows[0].source == "modbus"
    assert rows[1].decoded is False and dead[0].error_code == "bad_modbus" and dead[0].meter_id == "M2"


WMBUSMETERS = {"_": "telegram", "media": "water", "meter": "multical21", "name": "tap", "id": "76348799",
               "total_m3": 6.408, "target_m3": 6.1, "max_flow_m3h": 0, "current_status": "DRY LEAK",
               "timestamp": "2018-02-08T09:07:22Z", "rssi_dbm": -41}


def test_an_unset_or_runaway_meter_clock_is_not_the_readings_key() -> None:
    meter = omsgen.meter_id(0)
    key = omsgen.meter_key(meter)
    received = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    clocks = [datetime(2000, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC),
              datetime(2026, 11, 2, 11, 45, tzinfo=UTC)]
    frames: list[dict[str, object]] = [
        {"t": received.timestamp(), "hex": omsgen.encode_telegram(meter, key, i, 10 + i, clock).hex()}
        for i, clock in enumerate(clocks)
    ]
    rows, dead = FrameProcessor({meter: key}).process(*_message(frames)).split()
    assert dead == []
    assert [r.time for r in rows] == [received, received, datetime(2026, 11, 2, 11, 45, tzinfo=UTC)]
    assert json.loads(rows[0].fields or b"{}")["meter_time"].startswith("2000-01-01")
    assert rows[2].fields is None or "meter_time" not in json.loads(rows[2].fields)  # a sane clock is the key itself


def test_wmbusmeters_json_maps_to_a_reading() -> None:
    r = to_reading(json.dumps(WMBUSMETERS).encode())
    assert isinstance(r, Reading)
    assert (r.meter_id, r.driver, r.device_type, r.total_m3, r.target_m3) == ("76348799", "multical21", "water",
                                                                               6.408, 6.1)
    assert r.meter_time == datetime(2018, 2, 8, 9, 7, 22, tzinfo=UTC)
    assert r.alarms == ("dry", "leak") and r.status == "DRY LEAK"
    assert r.fields["max_flow_m3h"] == 0 and "name" not in r.fields


def test_wmbusmeters_meter_clock_wins_and_is_local_time() -> None:
    from zoneinfo import ZoneInfo

    body = {**WMBUSMETERS, "meter_datetime": "2018-02-08 10:00", "target_date": "2018-01-31", "status": "OK"}
    body.pop("current_status")
    r = to_reading(body, ZoneInfo("Europe/Warsaw"))
    assert isinstance(r, Reading)
    assert r.meter_time == datetime(2018, 2, 8, 9, 0, tzinfo=UTC)
    assert r.target_date == date(2018, 1, 31) and r.status == "OK" and r.alarms == ()


@pytest.mark.parametrize("payload", [b"{", b"[1]", b'{"total_m3": 1}', b'{"id": "1", "total_m3": 1}'])
def test_wmbusmeters_bad_messages(payload: bytes) -> None:
    r = to_reading(payload)
    assert isinstance(r, DecodeError) and r.code == "bad_envelope"


def test_status_words() -> None:
    assert status_alarms("") == ("OK", ())
    assert status_alarms("BURST REVERSED LOW_BATTERY")[1] == ("burst", "backflow", "low_battery")


def test_wmbusmeters_message_becomes_a_wmbusmeters_row() -> None:
    rows, dead = FrameProcessor({}).process("p/v1/pi-3/wmbusmeters", json.dumps(WMBUSMETERS).encode()).split()
    assert dead == [] and rows[0].source == "wmbusmeters" and rows[0].gateway_id == "pi-3"
    assert rows[0].meter_id == "76348799"


def test_keys_csv() -> None:
    key = "00112233445566778899aabbccddeeff"
    text = f"meter_id,key_hex\n12345678,{key}\n\n# comment\n87654321,nothex\n,{key}\n11111111\n22222222,{key.upper()}\n"
    parsed = parse_keys_csv(text)
    assert [r["meter_id"] for r in parsed.rows] == ["12345678", "22222222"]
    assert parsed.rows[0]["key"] == bytes.fromhex(key)
    assert [line for line, _ in parsed.errors] == [5, 6, 7]
    assert all(key not in reason and key.upper() not in reason for _, reason in parsed.errors)
    assert len(parse_keys_csv(f"12345678,{key}\n").rows) == 1  # header optional


def test_meters_csv_reports_bad_rows_by_line_and_keeps_good_ones() -> None:
    text = (
        "meter_id,premise_ref,customer_ref,district,install_date,install_index_m3,removal_date,removal_index_m3,"
        "register_digits,verification_expiry,manufacturer\n"
        "10000001,P1,C1,DMA-1,2020-01-15,0.5,,,5,2030-01-01,KAM\n"
        "10000002,P2,C2,DMA-1,2020-13-01,0,,,5,,\n"
        "10000003,P3,C3,DMA-2,2020-01-01,-4,,,5,,\n"
        "10000004,P4,C4,DMA-2,2021-01-01,1,2020-01-01,2,5,,\n"
        "10000005,P5,C5,DMA-2,2021-01-01,1,,,40,,\n"
        ",P6,C6,DMA-2,,,,,,,\n"
        "10000007,P7,C7,DMA-3,,,,,,,\n"
    )
    parsed = parse_meters_csv(text)
    assert [r["meter_id"] for r in parsed.rows] == ["10000001", "10000007"]
    assert [line for line, _ in parsed.errors] == [3, 4, 5, 6, 7]
    first = parsed.rows[0]
    assert first["install_date"] == date(2020, 1, 15) and first["install_index_m3"] == 0.5
    assert first["register_digits"] == 5 and first["manufacturer"] == "KAM"
    assert parse_meters_csv("premise_ref\nP1\n").errors[0][0] == 1
