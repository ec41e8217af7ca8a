"""The CSV readings parser: mappings, units, local time and DST, bad rows with line numbers (pure)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest

from decoders.csv_readings import Mapping, parse_file, parse_lines


def test_canonical_iso_with_and_without_offset() -> None:
    res = parse_lines(["meter_id,time,total_m3", "M1,2024-03-01T00:00:00Z,1.5", "M1,2024-03-01T02:00:00+01:00,2",
                       "M1,2024-03-01 03:00:00,2.5"], Mapping())
    assert res.good["time"].to_list() == [datetime(2024, 3, 1, 0, tzinfo=UTC), datetime(2024, 3, 1, 1, tzinfo=UTC),
                                          datetime(2024, 3, 1, 3, tzinfo=UTC)]
    assert res.good["total_m3"].to_list() == [1.5, 2.0, 2.5] and res.good["line"].to_list() == [2, 3, 4]


def test_toml_mapping_litres_gzip_and_bad_rows(tmp_path: Path) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text('delimiter = ";"\nmeter_column = "user key"\ntime_column = "datetime"\n'
                       'value_column = "meter reading"\ntime_format = "%d/%m/%Y %H:%M:%S"\nunit = "litres"\n'
                       'timezone = "Europe/Madrid"\n')
    data = tmp_path / "x.csv.gz"
    data.write_bytes(gzip.compress("\n".join([
        "user key;datetime;meter reading;diff",
        "a;30/10/2016 01:30:00;1000;0",   # CEST
        "a;30/10/2016 02:30:00;1010;10",  # first 02:30 (CEST, 00:30 UTC)
        "a;30/10/2016 02:30:00;1020;10",  # second 02:30 (CET, 01:30 UTC): kept, flagged dst_fold
        "a;30/10/2016 03:30:00;4e+03;0",  # scientific notation: 4000 L
        "a;27/03/2016 02:30:00;900;0",    # does not exist (spring forward)
        "a;31/02/2016 10:00:00;900;0",    # not a date
        "a;01/03/2016 10:00:00;abc;0",    # not a number
        ";01/03/2016 10:00:00;1;0",       # no meter
        "a;01/03/2016 10:00:00;-5;0",     # negative
        "a;01/03/2016 11:00:00",          # too few fields
        "",
    ]).encode()))
    res = parse_file(data, Mapping.from_toml(mapping))
    assert res.good["total_m3"].to_list() == [1.0, 1.01, 1.02, 4.0]
    assert res.good["time"].to_list() == [datetime(2016, 10, 29, 23, 30, tzinfo=UTC),
                                          datetime(2016, 10, 30, 0, 30, tzinfo=UTC),
                                          datetime(2016, 10, 30, 1, 30, tzinfo=UTC),
                                          datetime(2016, 10, 30, 2, 30, tzinfo=UTC)]
    assert res.good["dst_fold"].to_list() == [False, False, True, False]
    assert res.good["notation"].to_list() == [None, None, None, "scientific"]
    assert res.bad.select("line", "reason").rows() == [
        (6, "local time 27/03/2016 02:30:00 does not exist in Europe/Madrid (DST gap)"),
        (7, "time 31/02/2016 10:00:00 does not match %d/%m/%Y %H:%M:%S"),
        (8, "index abc is not a number"),
        (9, "empty meter id"),
        (10, "negative index -5"),
        (11, "expected 4 fields, found 2"),
    ]
    assert res.stats == {"lines": 10, "good": 4, "bad": 6, "scientific": 1, "dst_repeated_hour": 1, "meters": 1}


def test_missing_columns_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Pass a mapping"):
        parse_lines(["a;b;c", "1;2;3"], Mapping())
    bad = tmp_path / "m.toml"
    bad.write_text('separator = ";"\n')
    with pytest.raises(ValueError, match="unknown mapping keys"):
        Mapping.from_toml(bad)
