"""Bounded fuzzing (hypothesis) of the two parsers that read what outsiders send: the MQTT envelope and the
readings import. Whatever the input, they answer with a result or their own refusal, never a crash."""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decoders.csv_readings import FileError, Mapping, parse_lines
from meterflow.envelope import EnvelopeError, FrameBatch, decode_batch
from meterflow.plausibility import MAX_INDEX_M3, PlausibilitySettings

BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
ENVELOPE_KEYS = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 1, 2, "1", None]), "gw": st.text(max_size=10) | st.integers(),
     "kind": st.sampled_from(["wmbus", "modbus", ""]) | JSON, "frames": st.lists(JSON, max_size=5) | JSON},
    optional={"sent": JSON, "batch": JSON, "extra": JSON},
)


def _decode(payload: bytes) -> FrameBatch | None:
    try:
        return decode_batch(payload)
    except EnvelopeError:
        return None


@BOUNDED
@given(st.binary(max_size=300))
def test_envelope_parser_survives_any_bytes(payload: bytes) -> None:
    _decode(payload)


@BOUNDED
@given(ENVELOPE_KEYS)
def test_envelope_parser_survives_any_json_shape(body: dict[str, object]) -> None:
    batch = _decode(json.dumps(body, allow_nan=True).encode())
    if batch is not None:
        assert isinstance(batch.gateway_id, str) and isinstance(batch.frames, list)
        assert math.isfinite(batch.sent)


def test_envelope_parser_refuses_deep_nesting() -> None:
    assert _decode(b"[" * 100_000 + b"]" * 100_000) is None


CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
VALUE = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str), CELL,
                  st.sampled_from(["1e308", "1e400", "-0", "12,5", "NaN", "inf", ""]))
TIME = st.one_of(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: d.isoformat()), CELL, st.sampled_from(["0001-01-01T00:00:00Z", "2999-01-01T00:00:00Z", ""]))
ROW = st.tuples(CELL, TIME, VALUE, st.sampled_from([0, 0, 0, 1, -1])).map(
    lambda t: ",".join([t[0], t[1], t[2]] + (["x"] if t[3] > 0 else [])) if t[3] >= 0 else ",".join(t[:2]))
NOW = datetime(2026, 6, 1, tzinfo=UTC)


@BOUNDED
@given(st.lists(ROW, max_size=30))
def test_import_parser_keeps_only_plausible_rows_and_accounts_for_every_line(rows: list[str]) -> None:
    lines = ["meter_id,time,total_m3", *rows]
    window = PlausibilitySettings()
    try:
        res = parse_lines(lines, Mapping(), window, now=NOW)
    except FileError:
        assert not any(r.strip() for r in rows)
        return
    assert res.good.height + res.bad.height == sum(1 for r in rows if r.strip())
    latest = NOW + timedelta(hours=window.future_tolerance_hours)
    for meter_id, when, value in res.good.select("meter_id", "time", "total_m3").iter_rows():
        assert 0 <= value < MAX_INDEX_M3 and math.isfinite(value)
        assert window.earliest <= when <= latest
        assert meter_id and len(meter_id) <= 64 and not any(c.isspace() for c in meter_id)
    assert all(isinstance(r, str) and r for r in res.bad["reason"].to_list())


@BOUNDED
@given(st.lists(st.text(max_size=40), min_size=1, max_size=8), st.sampled_from([",", ";", "\t"]))
def test_import_parser_survives_any_text(lines: list[str], delimiter: str) -> None:
    with contextlib.suppress(ValueError):  # FileError or a header naming no known columns: one clear message
        parse_lines(lines, Mapping(delimiter=delimiter), now=NOW)


@BOUNDED
@given(st.lists(st.lists(CELL, max_size=6), max_size=10),
       st.sampled_from(["meter_id,district,install_date,register_digits,lat", "meter_id,customer_ref,move_in"]))
def test_registry_parsers_report_or_keep_every_row(rows: list[list[str]], header: str) -> None:
    from storage.registry import parse_keys_csv, parse_meters_csv

    body = [",".join(c.replace(",", " ").replace("\n", " ").replace("\r", " ").replace('"', "") for c in r)
            for r in rows]
    data = [b for b in body if any(c.strip() for c in b.split(",")) and not b.lstrip().startswith("#")]
    parsed = parse_meters_csv("\n".join([header, *body]))
    assert len(parsed.rows) + len([e for e in parsed.errors if e[0] > 1]) == len(data)
    for r in parsed.rows:
        assert r["meter_id"] and " " not in r["meter_id"]
    keys = parse_keys_csv("\n".join(body))
    assert all(len(k["key"]) == 16 for k in keys.rows)
