"""Careless and hostile files through the real import commands and database: bad rows refused with their
line and reason, good rows kept, a non-zero exit, and nothing destroyed."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from sec_seed import MASTER

from cli.main import cli
from meterflow.config import Settings

KEY = "000102030405060708090A0B0C0D0E0F"


@pytest.fixture
def env(sec_settings: Settings, monkeypatch: pytest.MonkeyPatch, clean_db: psycopg.Connection) -> Settings:
    dsn = sec_settings.database_dsn()
    assert dsn
    monkeypatch.setenv("METERFLOW_DATABASE_URL", dsn)
    monkeypatch.setenv("METERFLOW_DATA_DIR", str(sec_settings.data_dir))
    monkeypatch.setenv("METERFLOW_SECRETS__MASTER_KEY", MASTER)
    clean_db.execute("INSERT INTO meters (meter_id, district, register_digits) VALUES ('A', 'North', 5)")
    clean_db.commit()
    return sec_settings


def run(*args: str) -> object:
    return CliRunner().invoke(cli, list(args))


def partitions(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'readings'::regclass").fetchone()
    conn.rollback()
    return int(row[0]) if row else 0


# --------------------------------------------------------------------------------------------- readings import


def test_far_dates_and_absurd_values_are_bad_rows_and_create_no_partitions(env: Settings, tmp_path: Path,
                                                                          clean_db: psycopg.Connection) -> None:
    before = partitions(clean_db)
    f = tmp_path / "h.csv"
    f.write_text("meter_id,time,total_m3\n"
                 "A,0001-01-01T00:00:00Z,1\n"
                 "A,2999-01-01T00:00:00Z,2\n"
                 "A,2024-03-01T00:00:00Z,1e308\n"
                 "A,2024-03-01T01:00:00Z,inf\n"
                 "A,2024-03-01T02:00:00Z,-5\n"
                 "A,2024-03-02T00:00:00Z,10,5\n"       # a long row
                 "A,2024-03-03T00:00:00Z\n"            # a short row
                 "A,2024-03-04T00:00:00Z,12.5\n"       # good
                 "A,2024-03-04T00:00:00Z,12.5\n")      # a repeat of the line before
    out = run("readings", "import", str(f))
    assert out.exit_code == 1, out.output
    for line, reason in ((2, "before 2000-01-01"), (3, "in the future"), (4, "beyond any register"),
                         (5, "not finite"), (6, "negative index"), (7, "expected 3 fields, found 4"),
                         (8, "expected 3 fields, found 2")):
        assert f"line {line}: " in out.stderr and reason in out.stderr.split(f"line {line}: ")[1].splitlines()[0]
    assert "line 10: repeats line 9" in out.stderr
    assert "7 rows rejected (7 bad, 0 conflicting)" in out.stderr
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert (stats["good"], stats["bad"], stats["inserted"], stats["duplicates_in_file"]) == (2, 7, 1, 1)
    rows = clean_db.execute("SELECT total_m3 FROM readings WHERE meter_id = 'A'").fetchall()
    assert rows == [(12.5,)]
    assert partitions(clean_db) - before <= 1  # at most the month of the good row


@pytest.mark.parametrize(("content", "message"), [
    (b"", "is empty"),
    (b"meter_id,time,total_m3\n", "has a header but no readings"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary file"),
    (gzip.compress(b"meter_id,time,total_m3\nA,2024-03-01T00:00:00Z,1\n")[:-12], "corrupt or truncated gzip"),
    (b"meter_id,time,total_m3\nA,2024-03-01T00:00:00Z,\xff\xfe\n", "not UTF-8"),
])
def test_unreadable_files_get_one_clear_line(env: Settings, tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "x.csv.gz"
    f.write_bytes(content)
    out = run("readings", "import", str(f))
    assert out.exit_code == 1
    assert message in out.output and "Traceback" not in out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)
    assert len([line for line in out.output.splitlines() if line.startswith("Error")]) == 1


def test_register_meters_refuses_malformed_ids(env: Settings, tmp_path: Path, clean_db: psycopg.Connection) -> None:
    f = tmp_path / "r.csv"
    f.write_text("meter_id,time,total_m3\n"
                 "NEW 1,2024-03-01T00:00:00Z,1\n"
                 f"{'X' * 5000},2024-03-01T00:00:00Z,1\n"
                 "NEW-2,2024-03-01T00:00:00Z,1\n")
    out = run("readings", "import", str(f), "--register-meters")
    assert out.exit_code == 1
    assert out.stderr.count("malformed meter id") == 2
    ids = [r[0] for r in clean_db.execute("SELECT meter_id FROM meters ORDER BY meter_id")]
    assert ids == ["A", "NEW-2"]


def test_readings_add_takes_a_decimal_comma(env: Settings, clean_db: psycopg.Connection) -> None:
    out = run("readings", "add", "--meter", "A", "--time", "2024-03-01T12:00:00+01:00", "--index", "12,5")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["total_m3"] == 12.5
    row = clean_db.execute("SELECT total_m3, fields->>'entered_by' FROM readings WHERE meter_id = 'A'").fetchone()
    assert row is not None and row[0] == 12.5 and row[1].startswith("cli")
    for bad in ("1e400", "nan", "12,5,1", "abc"):
        refused = run("readings", "add", "--meter", "A", "--time", "2024-03-02T12:00:00+01:00", "--index", bad)
        assert refused.exit_code == 2, bad


# --------------------------------------------------------------------------------------------- meters import


def test_meters_import_short_rows_are_bad_and_unnamed_columns_stay(env: Settings, tmp_path: Path,
                                                                   clean_db: psycopg.Connection) -> None:
    clean_db.execute("UPDATE meters SET install_date = '2020-01-01', premise_ref = 'P-A' WHERE meter_id = 'A'")
    clean_db.commit()
    f = tmp_path / "m.csv"
    f.write_text("meter_id,district,install_date,medium\n"
                 "A,South\n"                        # short: a bad row, nothing of A changes
                 "B,East,2021-05-01,\n"             # empty NOT NULL medium: the default stays
                 "C,West,2022-01-01,water\n"
                 "C,West,2022-01-02,water\n")       # repeated meter: reported, the first line kept
    out = run("meters", "import", str(f))
    assert out.exit_code == 1
    assert "m.csv:2: 2 fields but the header has 4" in out.output
    assert "m.csv:5: meter C already given on line 4" in out.output
    assert "meters: 2 imported, 2 lines rejected" in out.output
    rows = clean_db.execute("SELECT meter_id, district, install_date::text, premise_ref, medium FROM meters"
                            " ORDER BY meter_id").fetchall()
    assert rows == [("A", "North", "2020-01-01", "P-A", "water"), ("B", "East", "2021-05-01", None, "water"),
                    ("C", "West", "2022-01-01", None, "water")]
    # a file that does not name a column leaves it alone
    g = tmp_path / "d.csv"
    g.write_text("meter_id,district\nA,South\n")
    assert run("meters", "import", str(g)).exit_code == 0
    assert clean_db.execute("SELECT district, install_date::text, premise_ref FROM meters WHERE meter_id = 'A'"
                            ).fetchone() == ("South", "2020-01-01", "P-A")


def test_a_new_customer_in_meters_import_opens_a_tenancy(env: Settings, tmp_path: Path,
                                                         clean_db: psycopg.Connection) -> None:
    f = tmp_path / "c.csv"
    f.write_text("meter_id,customer_ref\nA,C-OLD\n")
    assert run("meters", "import", str(f)).exit_code == 0
    f.write_text("meter_id,customer_ref,move_in\nA,C-NEW,2026-02-01\n")
    assert run("meters", "import", str(f)).exit_code == 0
    rows = clean_db.execute("SELECT customer_ref, move_in::text, move_out::text FROM meter_customers"
                            " ORDER BY move_in").fetchall()
    assert rows == [("C-OLD", "2000-01-01", "2026-02-01"), ("C-NEW", "2026-02-01", None)]


# --------------------------------------------------------------------------------------------- keys import


def test_keys_import_reports_repeats_and_unknown_meters(env: Settings, tmp_path: Path,
                                                        clean_db: psycopg.Connection) -> None:
    f = tmp_path / "k.csv"
    f.write_text(f"meter_id,key_hex\nA,{KEY}\nA,{'11' * 16}\nTYPO,{KEY}\n")
    out = run("keys", "import", str(f))
    assert out.exit_code == 1
    assert "k.csv:3: meter A already has a key on line 2" in out.output
    assert "k.csv:4: meter TYPO is not in the registry" in out.output
    assert "keys: 1 imported, 2 lines rejected" in out.output
    assert clean_db.execute("SELECT count(*) FROM meters WHERE meter_id = 'TYPO'").fetchone() == (0,)
    stored = clean_db.execute("SELECT aes_key FROM meters WHERE meter_id = 'A'").fetchone()
    assert stored is not None and bytes.fromhex(KEY) not in bytes(stored[0])  # sealed, not plain
    empty = tmp_path / "e.csv"
    empty.write_text("")
    assert run("keys", "import", str(empty)).exit_code == 1
    header_only = tmp_path / "h.csv"
    header_only.write_text("meter_id,key_hex\n")
    out = run("keys", "import", str(header_only))
    assert out.exit_code == 1 and "no key lines" in out.output


def test_keys_are_sealed_rotated_and_refused_without_the_master_key(env: Settings, tmp_path: Path,
                                                                    clean_db: psycopg.Connection,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from meterflow.secrets import Keyring, SecretError, new_master_key
    from storage.registry import load_keys

    f = tmp_path / "k.csv"
    f.write_text(f"A,{KEY}\n")
    assert run("keys", "import", str(f)).exit_code == 0
    assert load_keys(clean_db) == {"A": bytes.fromhex(KEY)}  # the decoder gets the plain key
    new = new_master_key()
    monkeypatch.setenv("METERFLOW_SECRETS__MASTER_KEY", new)
    with pytest.raises(SecretError, match="not configured"):
        load_keys(clean_db)
    monkeypatch.setenv("METERFLOW_SECRETS__PREVIOUS_MASTER_KEYS", json.dumps([MASTER]))
    out = run("keys", "rotate")
    assert out.exit_code == 0 and "1 resealed" in out.output
    monkeypatch.delenv("METERFLOW_SECRETS__PREVIOUS_MASTER_KEYS")
    assert load_keys(clean_db) == {"A": bytes.fromhex(KEY)}
    sealed = clean_db.execute("SELECT aes_key FROM meters WHERE meter_id = 'A'").fetchone()
    assert sealed is not None
    ring = Keyring.from_settings(Settings())
    with pytest.raises(SecretError, match="does not open"):
        ring.open("B", bytes(sealed[0]))  # a sealed key copied onto another meter does not open
