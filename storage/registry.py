"""Meter registry and AES keys: CSV parsing (pure) and the upserts into `meters`.

Keys are secrets: they are stored in meters.aes_key, handed to the decoder, and never logged, listed or
exported (`list_meters` reports only whether a key is known).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import psycopg

KEY_COLUMNS = ("meter_id", "key_hex")
METER_COLUMNS = (
    "meter_id", "premise_ref", "customer_ref", "district", "install_date", "install_index_m3", "removal_date",
    "removal_index_m3", "register_digits", "verification_expiry", "manufacturer", "model", "medium",
    "street", "house_number", "postcode", "city", "lat", "lon", "role", "parent_meter_id", "tariff_group",
    "phone", "email", "notice_consent",
)
ROLES = ("main", "garden", "inlet")
COORDINATE_RANGES = {"lat": (-90.0, 90.0), "lon": (-180.0, 180.0)}
CONSENT_WORDS = {"yes": True, "true": True, "1": True, "y": True, "no": False, "false": False, "0": False, "n": False}
DATE_COLUMNS = frozenset({"install_date", "removal_date", "verification_expiry"})
FLOAT_COLUMNS = frozenset({"install_index_m3", "removal_index_m3"})
Progress = Callable[[int, int], None]


@dataclass
class ParseResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    columns: tuple[str, ...] = ()


def _reader(text: str) -> tuple[list[str], Iterable[tuple[int, list[str]]]]:
    lines = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    numbered = [(i + 1, row) for i, row in enumerate(lines) if row and any(c.strip() for c in row)
                and not row[0].lstrip().startswith("#")]
    if not numbered:
        return [], []
    header = [c.strip().lower() for c in numbered[0][1]]
    return header, numbered[1:]


def _meter_id(value: str) -> str | None:
    value = value.strip()
    return value if value and len(value) <= 32 and value.isprintable() and " " not in value else None


def parse_keys_csv(text: str) -> ParseResult:
    """`meter_id,key_hex` rows (a header line is optional) -> rows {meter_id, key: 16 bytes} and errors."""
    out = ParseResult(columns=KEY_COLUMNS)
    lines = [(i + 1, row) for i, row in enumerate(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
             if row and any(c.strip() for c in row) and not row[0].lstrip().startswith("#")]
    body = lines
    if lines and not (len(lines[0][1]) >= 2 and _is_key(lines[0][1][1])):
        header = [c.strip().lower() for c in lines[0][1]]
        if header[:2] != list(KEY_COLUMNS):
            out.errors.append((lines[0][0], f"header must be 'meter_id,key_hex', got {','.join(header)!r}"))
        body = lines[1:]
    for line, row in body:
        if len(row) < 2:
            out.errors.append((line, "expected 2 columns: meter_id,key_hex"))
            continue
        meter_id = _meter_id(row[0])
        if meter_id is None:
            out.errors.append((line, "meter_id is empty or malformed"))
            continue
        if not _is_key(row[1]):
            out.errors.append((line, f"key for meter {meter_id} is not 32 hex digits (16 bytes)"))
            continue
        out.rows.append({"meter_id": meter_id, "key": bytes.fromhex(row[1].strip())})
    return out


def _is_key(value: str) -> bool:
    value = value.strip()
    if len(value) != 32:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


def _parse_value(column: str, text: str) -> Any:
    text = text.strip()
    if text == "":
        return None
    if column in DATE_COLUMNS:
        return date.fromisoformat(text)
    if column in FLOAT_COLUMNS:
        value = float(text)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{column} must be a non-negative number")
        return value
    if column in COORDINATE_RANGES:
        low, high = COORDINATE_RANGES[column]
        coordinate = float(text.replace(",", "."))
        if not low <= coordinate <= high:
            raise ValueError(f"{column} must be between {low:g} and {high:g}")
        return coordinate
    if column == "role":
        role = text.lower()
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        return role
    if column == "parent_meter_id":
        parent = _meter_id(text)
        if parent is None:
            raise ValueError("parent_meter_id is malformed")
        return parent
    if column == "notice_consent":
        if text.lower() not in CONSENT_WORDS:
            raise ValueError("notice_consent must be yes/no (true/false, 1/0)")
        return CONSENT_WORDS[text.lower()]
    if column == "register_digits":
        digits = int(text)
        if not 1 <= digits <= 12:
            raise ValueError("register_digits must be 1..12")
        return digits
    return text


def parse_meters_csv(text: str) -> ParseResult:
    """Registry rows (header names as in table meters) -> typed rows and (line, reason) for the bad ones."""
    header, body = _reader(text)
    out = ParseResult()
    if "meter_id" not in header:
        out.errors.append((1, "header must name the columns and include meter_id"))
        return out
    unknown = [c for c in header if c not in METER_COLUMNS]
    if unknown:
        out.errors.append((1, f"ignored unknown columns: {', '.join(unknown)}"))
    if "aes_key" in header or "key_hex" in header:
        out.errors.append((1, "keys are imported with `meterflow keys import`, not with the registry"))
    columns = tuple(c for c in header if c in METER_COLUMNS)
    out.columns = columns
    seen: dict[str, int] = {}
    for line, row in body:
        if len(row) > len(header):
            out.errors.append((line, f"{len(row)} fields but the header has {len(header)}"))
            continue
        record: dict[str, Any] = {}
        try:
            for name, value in zip(header, row, strict=False):
                if name in METER_COLUMNS:
                    record[name] = _parse_value(name, value)
        except ValueError as exc:
            out.errors.append((line, f"{exc}"))
            continue
        meter_id = _meter_id(str(record.get("meter_id") or ""))
        if meter_id is None:
            out.errors.append((line, "meter_id is empty or malformed"))
            continue
        record["meter_id"] = meter_id
        if record.get("parent_meter_id") == meter_id:
            out.errors.append((line, "a meter cannot be its own parent_meter_id"))
            continue
        if "role" in record and record["role"] is None:
            record["role"] = "main"
        removed, installed = record.get("removal_date"), record.get("install_date")
        if removed and installed and removed < installed:
            out.errors.append((line, "removal_date is before install_date"))
            continue
        if meter_id in seen:
            out.errors.append((line, f"meter {meter_id} already given on line {seen[meter_id]}; this line wins"))
            out.rows = [r for r in out.rows if r["meter_id"] != meter_id]
        seen[meter_id] = line
        for name in columns:
            record.setdefault(name, None)
        out.rows.append(record)
    return out


def _chunks(rows: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def import_keys(conn: psycopg.Connection, rows: list[dict[str, Any]], progress: Progress | None = None) -> int:
    """Insert or update meters.aes_key; returns rows written. Commits."""
    done = 0
    with conn.cursor() as cur:
        for chunk in _chunks(rows, 2000):
            cur.executemany(
                "INSERT INTO meters (meter_id, aes_key) VALUES (%s, %s) ON CONFLICT (meter_id)"
                " DO UPDATE SET aes_key = excluded.aes_key, updated_at = now()",
                [(r["meter_id"], r["key"]) for r in chunk],
            )
            done += len(chunk)
            if progress:
                progress(done, len(rows))
    conn.commit()
    return done


def import_meters(conn: psycopg.Connection, parsed: ParseResult, progress: Progress | None = None) -> int:
    """Upsert registry rows; only the columns present in the file are written (keys are never touched)."""
    columns = [c for c in parsed.columns if c != "meter_id"]
    names = ["meter_id", *columns]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
    conflict = f"DO UPDATE SET {updates}, updated_at = now()" if columns else "DO NOTHING"
    query = (f"INSERT INTO meters ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})"
             f" ON CONFLICT (meter_id) {conflict}")
    done = 0
    with conn.cursor() as cur:
        for chunk in _chunks(parsed.rows, 2000):
            cur.executemany(query, [tuple(r.get(c) for c in names) for r in chunk])
            done += len(chunk)
            if progress:
                progress(done, len(parsed.rows))
    conn.commit()
    return done


def load_keys(conn: psycopg.Connection) -> dict[str, bytes]:
    """meter_id -> AES key for every meter that has one (for the decoder; never print these)."""
    return {r[0]: bytes(r[1]) for r in conn.execute("SELECT meter_id, aes_key FROM meters WHERE aes_key IS NOT NULL")}


LIST_COLUMNS = ("meter_id", "manufacturer", "model", "medium", "premise_ref", "customer_ref", "district",
                "install_date", "install_index_m3", "removal_date", "removal_index_m3", "register_digits",
                "verification_expiry", "street", "house_number", "postcode", "city", "lat", "lon", "role",
                "parent_meter_id", "tariff_group")


def list_meters(
    conn: psycopg.Connection, district: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Registry rows without the key (only `has_key`)."""
    query = f"SELECT {', '.join(LIST_COLUMNS)}, aes_key IS NOT NULL AS has_key FROM meters"
    params: list[Any] = []
    if district:
        query += " WHERE district = %s"
        params.append(district)
    query += " ORDER BY meter_id"
    if limit:
        query += " LIMIT %s"
        params.append(limit)
    cols = [*LIST_COLUMNS, "has_key"]
    return [dict(zip(cols, r, strict=True)) for r in conn.execute(query, params)]
