"""Absurd input never becomes a reading: radio, Modbus and wmbusmeters paths refuse it with a reason code."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.commands.decode import decode
from decoders.modbus import decode_registers
from decoders.modbus.profiles import PROFILES
from decoders.reading import ERROR_CODES, DecodeError, Reading
from decoders.wmbus import WmbusDecoder
from decoders.wmbus.compact import signature_of
from decoders.wmbus.testing import link_header, mode5_frame, plain_frame, water_records
from decoders.wmbusmeters import to_reading
from fixtures.oms import datetime_type_f
from meterflow.plausibility import PlausibilitySettings

KEY = bytes(range(16))
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
POISON = "18442D2C785634121B077A010000000707FFFFFFFFFFFFFF7F"  # 64-bit energy record scaled past 2**64


def _frame(body: bytes) -> bytes:
    return bytes([len(body)]) + body


def _error(result: Reading | DecodeError) -> str:
    assert isinstance(result, DecodeError), result
    assert result.code in ERROR_CODES
    return result.code


# -- wireless M-Bus ------------------------------------------------------------------------------------


def test_the_poison_frame_is_an_error_not_a_reading() -> None:
    result = WmbusDecoder().decode(bytes.fromhex(POISON))
    assert _error(result) == "value_out_of_range"
    assert isinstance(result, DecodeError) and result.meter_id == "12345678"


@pytest.mark.parametrize(("records", "code"), [
    ("0413FBFFFFFF", "negative_index"),  # total -0.005 m3
    ("07130000" "64A7B3B6E00D", "beyond_register"),  # 1e15 m3 (64-bit litres)
    ("05130000807F", None),  # real32 +Infinity: no value at all (dropped), so no total and no error
])
def test_absurd_totals_refuse_the_frame(records: str, code: str | None) -> None:
    result = WmbusDecoder().decode(plain_frame("11223344", bytes.fromhex(records)))
    if code is None:
        assert isinstance(result, Reading) and result.total_m3 is None
    else:
        assert _error(result) == code


def test_a_billing_value_of_all_ones_is_refused_the_total_kept() -> None:
    result = WmbusDecoder().decode(plain_frame("11223344", water_records(1234, -1)))
    assert isinstance(result, Reading)
    assert (result.total_m3, result.target_m3) == (1.234, None)
    assert result.fields["refused_target_m3"] == "-0.001 negative_index"


def test_ids_that_are_not_bcd_and_manufacturers_that_are_not_letters() -> None:
    frame = bytearray(plain_frame("11223344", water_records(1)))
    frame[4] = 0x1A  # id byte with a hex digit: "1122331a"
    assert _error(WmbusDecoder().decode(bytes(frame))) == "malformed_meter_id"
    frame = bytearray(plain_frame("11223344", water_records(1)))
    frame[2:4] = b"\x00\x00"  # M-field 0: "@@@"
    assert _error(WmbusDecoder().decode(bytes(frame))) == "bad_manufacturer"


def test_binary_text_records_become_hex_never_control_characters() -> None:
    # 0D FD 11 (customer text, LVAR, stored reversed) holding a NUL, a BEL and a newline
    lvar = bytes.fromhex("0DFD110541000A0741")
    result = WmbusDecoder().decode(plain_frame("11223344", water_records(1) + lvar))
    assert isinstance(result, Reading)
    assert result.fields["customer"] == "41070a0041"
    printable = WmbusDecoder().decode(plain_frame("11223344", water_records(1) + bytes.fromhex("0DFD1103434241")))
    assert isinstance(printable, Reading) and printable.fields["customer"] == "ABC"


def test_a_meter_clock_outside_the_window_leaves_the_column() -> None:
    ahead = datetime(2090, 1, 1, 0, 0, tzinfo=UTC)
    records = water_records(1) + b"\x04\x6d" + datetime_type_f(ahead).to_bytes(4, "little")
    result = WmbusDecoder().decode(plain_frame("11223344", records))
    assert isinstance(result, Reading) and result.total_m3 == 0.001
    assert result.meter_time is None and result.fields["refused_meter_time"] == "2090-01-01T00:00:00+00:00 " \
                                                                                 "time_in_future"
    # the window is the kernel setting: a 2005 clock is refused where the utility starts in 2010
    old = datetime(2005, 3, 1, 8, 0, tzinfo=UTC)
    records = water_records(1) + b"\x04\x6d" + datetime_type_f(old).to_bytes(4, "little")
    strict = WmbusDecoder(plausibility=PlausibilitySettings(earliest=datetime(2010, 1, 1, tzinfo=UTC)))
    result = strict.decode(plain_frame("11223344", records))
    assert isinstance(result, Reading) and result.meter_time is None
    assert result.fields["refused_meter_time"].endswith("time_out_of_window")
    kept = WmbusDecoder().decode(plain_frame("11223344", records))
    assert isinstance(kept, Reading) and kept.meter_time == old


def test_apator162_records_that_are_not_its_layout_are_missing_volume() -> None:
    # an Apator 16-2 header whose payload parses as OMS records without a volume (the garbage of issue 12)
    body = link_header("03410514", "APA", 0x05, 0x07) + bytes.fromhex("7A19000000" "040601000000" "02FD170000")
    result = WmbusDecoder().decode(_frame(body))
    assert _error(result) == "missing_volume"


# -- keyed meters --------------------------------------------------------------------------------------


def test_a_keyed_meter_refuses_plaintext_telegrams() -> None:
    keys = {"11223344": KEY}
    assert isinstance(WmbusDecoder(keys).decode(mode5_frame("11223344", KEY, water_records(5))), Reading)
    assert _error(WmbusDecoder(keys).decode(plain_frame("11223344", water_records(99_999_999)))) == \
        "unencrypted_for_keyed_meter"
    # the same telegram for a meter without a key is an ordinary reading
    assert isinstance(WmbusDecoder().decode(plain_frame("11223344", water_records(5))), Reading)
    # a wired long frame (no encryption) for a keyed meter too
    wired = bytes.fromhex("685656680800727537680001061507CCE800000C7875376800046D1DB458340413F73E0000023B0D004413"
                          "85010000426C41340227090203FD171C030004FF0A0404000002FF0B000003FF0C1300B20F00042C1B1B00"
                          "010200003716")
    assert _error(WmbusDecoder({"00683775": KEY}).decode(wired)) == "unencrypted_for_keyed_meter"


def test_a_plaintext_telegram_learns_no_compact_format_for_a_keyed_meter() -> None:
    fmt = bytes.fromhex("0C13" "0B3B" "02FD17")
    frame = plain_frame("11223344", bytes.fromhex("0C13") + bytes(4) + bytes.fromhex("0B3B") + bytes(3)
                        + bytes.fromhex("02FD17") + bytes(2))
    keyed = WmbusDecoder({"11223344": KEY})
    assert _error(keyed.decode(frame)) == "unencrypted_for_keyed_meter"
    assert keyed.signatures.get(signature_of(fmt)) is None  # a forged frame cannot teach compact formats
    unkeyed = WmbusDecoder()
    assert isinstance(unkeyed.decode(frame), Reading)
    assert unkeyed.signatures.get(signature_of(fmt)) == fmt


def test_meterflow_decode_refuses_plaintext_for_a_keyed_meter(tmp_path: Path) -> None:
    keys = tmp_path / "keys.csv"
    keys.write_text(f"meter_id,key_hex\n11223344,{KEY.hex()}\n")
    lines = [plain_frame("11223344", water_records(99_999_999)).hex(), POISON,
             mode5_frame("11223344", KEY, water_records(7)).hex()]
    result = CliRunner().invoke(decode, ["--keys", str(keys)], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.output.splitlines()]
    assert [o.get("error") for o in out] == ["unencrypted_for_keyed_meter", "value_out_of_range", None]
    assert out[2]["total_m3"] == 0.007


# -- Modbus --------------------------------------------------------------------------------------------

REFUSED = [(p.name, r) for p in PROFILES.values() for r in p.refused]


@pytest.mark.parametrize(("profile", "refused"), REFUSED, ids=[f"{p}-{r.code}" for p, r in REFUSED])
def test_modbus_register_contents_that_are_refused(profile: str, refused: object) -> None:
    from decoders.modbus.profiles import Refused

    assert isinstance(refused, Refused)
    assert _error(decode_registers(profile, refused.address, list(refused.words), meter_id="FM-1")) == refused.code


def test_modbus_all_ones_litre_counter_and_bad_ids() -> None:
    assert _error(decode_registers("pulse_u32_litres", 0, [0xFFFF, 0xFFFF], meter_id="FM-1")) == "beyond_register"
    ok = decode_registers("pulse_u32_litres", 0, [0x0012, 0xD687], meter_id="FM-1")
    assert isinstance(ok, Reading) and ok.total_m3 == 1234.567
    for meter_id in ("x" * 10_000, "FM 1", "FM\x001", ""):
        assert _error(decode_registers("pulse_u32_litres", 0, [0x0012, 0xD687], meter_id=meter_id)) == \
            "malformed_meter_id"
    err = decode_registers("pulse_u32_litres", 0, [0x0012, 0xD687, 7, 2**40], meter_id="x" * 10_000)
    assert isinstance(err, DecodeError) and err.meter_id is None  # an error never repeats a bad id


# -- wmbusmeters JSON ----------------------------------------------------------------------------------

MESSAGE = {"_": "telegram", "media": "water", "meter": "multical21", "id": "76348799", "total_m3": 6.408,
           "timestamp": "2026-11-30T09:07:22Z"}


@pytest.mark.parametrize(("change", "code"), [
    ({"total_m3": 1e308}, "beyond_register"),
    ({"total_m3": -5}, "negative_index"),
    ({"total_m3": "6.4"}, "not_a_number"),
    ({"timestamp": "1999-12-31T23:00:00Z"}, "time_out_of_window"),
    ({"timestamp": "2099-01-01T00:00:00Z"}, "time_in_future"),
    ({"id": "7" * 10_000}, "malformed_meter_id"),
    ({"id": "76 348 799"}, "malformed_meter_id"),
    ({"location": "tap\u0000"}, "control_characters"),
    ({"current_status": "LEAK\u0007"}, "control_characters"),
    ({"huge": 2**70}, "value_out_of_range"),
    ({"meter": "multical21\n"}, "control_characters"),
])
def test_wmbusmeters_injections_are_refused(change: dict[str, object], code: str) -> None:
    assert _error(to_reading({**MESSAGE, **change}, now=NOW)) == code


@pytest.mark.parametrize("text", ['"total_m3": Infinity', '"total_m3": 1e400', '"total_m3": NaN'])
def test_wmbusmeters_non_finite_json_is_refused(text: str) -> None:
    raw = json.dumps(MESSAGE).replace('"total_m3": 6.408', text)
    assert _error(to_reading(raw, now=NOW)) == "not_finite"


def test_wmbusmeters_window_is_the_kernel_setting_and_nesting_is_bad_input() -> None:
    dated_2005 = {**MESSAGE, "timestamp": "2005-06-01T00:00:00Z"}
    assert isinstance(to_reading(dated_2005, now=NOW), Reading)
    settings = PlausibilitySettings(earliest=datetime(2010, 1, 1, tzinfo=UTC))
    assert _error(to_reading(dated_2005, settings=settings, now=NOW)) == "time_out_of_window"
    assert _error(to_reading("[" * 100_000 + "]" * 100_000)) == "bad_envelope"


def test_wmbusmeters_meter_clock_off_falls_back_to_the_host_time() -> None:
    result = to_reading({**MESSAGE, "meter_datetime": "2000-00-00 00:00"}, now=NOW)
    assert isinstance(result, Reading) and result.meter_time == datetime(2026, 11, 30, 9, 7, 22, tzinfo=UTC)
    result = to_reading({**MESSAGE, "meter_datetime": "1999-01-01 00:00", "target_date": "1999-01-01"}, now=NOW)
    assert isinstance(result, Reading) and result.meter_time == datetime(2026, 11, 30, 9, 7, 22, tzinfo=UTC)
    assert result.fields["refused_meter_time"] == "1999-01-01T00:00:00+00:00 time_out_of_window"
    assert result.target_date is None and result.fields["refused_target_date"].startswith("1999-01-01")
    assert to_reading({**MESSAGE, "target_date": "2026-10-31"}, now=NOW).target_date == date(2026, 10, 31)  # type: ignore[union-attr]


def test_every_error_code_is_in_the_readme_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "decoders" / "README.md").read_text()
    table = readme.split("## Decode error codes", 1)[1].split("\n## ", 1)[0]
    documented = {code.strip() for line in table.splitlines() if line.startswith("| ") and "---" not in line
                  for code in line.split("|")[1].split(",")} - {"code"}
    assert documented == set(ERROR_CODES)


def test_apator162_total_comes_from_its_own_layout_not_from_oms_records() -> None:
    # a standard 0C13 volume where Apator 16-2 has its register list after 0F: not the driver's layout
    body = link_header("03410514", "APA", 0x05, 0x07) + bytes.fromhex("7A19000000" "0C1378563412")
    assert _error(WmbusDecoder().decode(_frame(body))) == "missing_volume"
    generic = link_header("03410514", "APA", 0x06, 0x07) + bytes.fromhex("7A19000000" "0C1378563412")
    result = WmbusDecoder().decode(_frame(generic))  # another APA version: standard records are fine
    assert isinstance(result, Reading) and result.total_m3 == 12345.678


def test_apator_registers_of_all_ones_are_not_readings() -> None:
    apt = "1C441486069C14000F0FA0" "FFFFFFFF" "0040030000000005FF0472BF1400"
    assert _error(WmbusDecoder().decode(bytes.fromhex(apt))) == "beyond_register"
    a162 = bytes.fromhex("3E4401061405410305077A190030852F2F0F86B4B89529020040C6C1B4F0F3F341555942FA701000F0010100"
                         "00" "10" "FFFFFFFF" "FFFFFFFFFFFFFFFFFFFFFF2483")  # register 0x10 (the total) all ones
    assert _error(WmbusDecoder().decode(a162)) == "missing_volume"


def test_meterflow_decode_uses_the_configured_time_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import cli

    old = datetime(2005, 3, 1, 8, 0, tzinfo=UTC)
    frame = plain_frame("11223344", water_records(1) + b"\x04\x6d" + datetime_type_f(old).to_bytes(4, "little"))
    config = tmp_path / "meterflow.toml"
    config.write_text('[plausibility]\nearliest = "2010-01-01T00:00:00Z"\n')
    monkeypatch.setenv("METERFLOW_CONFIG_FILE", str(config))  # as --config-file does
    strict = CliRunner().invoke(cli, ["decode"], input=frame.hex() + "\n")
    monkeypatch.delenv("METERFLOW_CONFIG_FILE")
    default = CliRunner().invoke(cli, ["decode"], input=frame.hex() + "\n")
    assert strict.exit_code == 0 and default.exit_code == 0, (strict.output, default.output)
    assert json.loads(strict.output)["refused_meter_time"] == "2005-03-01T08:00:00+00:00 time_out_of_window"
    assert json.loads(default.output)["meter_time"] == "2005-03-01T08:00:00+00:00"


FORMAT = bytes.fromhex("0C13" "0B3B" "02FD17")  # a keyed meter's full-frame format
COLLIDING = bytes.fromhex("0413" "0439" "0318")  # other records, crafted to the same CRC-16 signature


def _compact(meter_id: str, key: bytes, data: bytes) -> bytes:
    frame = bytearray(mode5_frame(meter_id, key, signature_of(FORMAT).to_bytes(2, "little") + bytes(2) + data))
    frame[10] = 0x7B  # compact short TPL (the IV does not cover the CI)
    return bytes(frame)


@pytest.mark.parametrize("forged_first", [False, True])
def test_a_forged_plaintext_frame_cannot_replace_a_keyed_meters_compact_format(forged_first: bool) -> None:
    assert signature_of(COLLIDING) == signature_of(FORMAT)
    dec = WmbusDecoder({"11223344": KEY})
    full = mode5_frame("11223344", KEY, bytes.fromhex("0C13" "78563412" "0B3B" "000000" "02FD17" "0000"))
    forged = plain_frame("99999999", bytes.fromhex("0413" "01000000" "0439" "01000000" "0318" "010000"))
    compact = _compact("11223344", KEY, bytes.fromhex("79563412" "000000" "0000"))
    if forged_first:
        assert isinstance(dec.decode(forged), Reading)  # an unkeyed meter: its plaintext is a reading
        assert _error(dec.decode(compact)) == "unknown_format_signature"  # not read with the forged format
    assert isinstance(dec.decode(full), Reading)
    assert isinstance(dec.decode(forged), Reading)
    result = dec.decode(compact)
    assert isinstance(result, Reading) and result.total_m3 == 12345.679


def test_untrusted_formats_survive_a_save_as_untrusted(tmp_path: Path) -> None:
    path = tmp_path / "sigs.json"
    dec = WmbusDecoder(signature_cache=path)
    assert isinstance(dec.decode(plain_frame("99999999", bytes.fromhex("0413" "01000000" "0439" "01000000" "0318"
                                                                         "010000"))), Reading)
    dec.save()
    again = WmbusDecoder({"11223344": KEY}, signature_cache=path)
    assert again.signatures.get(signature_of(COLLIDING)) == COLLIDING
    assert again.signatures.get(signature_of(COLLIDING), trusted_only=True) is None
