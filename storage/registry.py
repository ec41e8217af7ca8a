"""Meter registry and AES keys: CSV parsing (pure) and the upserts into `meters`.

Keys are secrets: they are stored sealed (AES-GCM under the master key, meterflow/secrets.py) in
meters.aes_key, handed decrypted to the decoder, and never logged, listed or exported (`list_meters` reports
only whether a key is known). A bad row is reported with its line and reason and the good rows are kept;
a row names only the columns of its file's header, the others are left as they are.
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

from meterflow.secrets import Keyring, default_keyring
from storage.tenancy import TENANCY_COLUMNS, move_in

KEY_COLUMNS = ("meter_id", "key_hex")
METER_COLUMNS = (
    "meter_id", "premise_ref", "customer_ref", "district", "install_date", "install_index_m3", "removal_date",
    "removal_index_m3", "register_digits", "verification_expiry", "manufacturer", "model", "medium",
    "street", "house_number", "postcode", "city", "lat", "lon", "role", "parent_meter_id", "tariff_group",
    "phone", "email", "notice_consent",
)
#: not a column of `meters`: the day a customer_ref of the row took the meter over (default: the import day)
MOVE_IN_COLUMN = "move_in"
#: NOT NULL columns with a default: an empty cell there leaves the stored value (or the default) as it is
REQUIRED_IF_NAMED = frozenset({"medium", "register_digits"})
TEXT_MAX = 200
#: a meter's first customer, when the file gives no move_in, holds it with all its history
FIRST_TENANCY = date(2000, 1, 1)
ROLES = ("main", "garden", "inlet")
COORDINATE_RANGES = {"lat": (-90.0, 90.0), "lon": (-180.0, 180.0)}
CONSENT_WORDS = {"yes": True, "true": True, "1": True, "y": True, "no": False, "false": False, "0": False, "n": False}
DATE_COLUMNS = frozenset({"install_date", "removal_date", "verification_expiry", MOVE_IN_COLUMN})
FLOAT_COLUMNS = frozenset({"install_index_m3", "removal_index_m3"})
Progress = Callable[[int, int], None]


@dataclass
class ParseResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    columns: tuple[str, ...] = ()
    lines: dict[str, int] = field(default_factory=dict)  # meter_id -> line of its row


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
    """`meter_id,key_hex` rows (a header line is optional) -> rows {meter_id, key: 16 bytes, line} and errors;
    the one parser of key files (`keys import`, `decode --keys`, the demo). A repeated meter is an error (the
    first line is kept) and a file without any key line is one."""
    out = ParseResult(columns=KEY_COLUMNS)
    lines = [(i + 1, row) for i, row in enumerate(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
             if row and any(c.strip() for c in row) and not row[0].lstrip().startswith("#")]
    body = lines
    if lines and not (len(lines[0][1]) >= 2 and _is_key(lines[0][1][1])):
        header = [c.strip().lower() for c in lines[0][1]]
        if header[:2] != list(KEY_COLUMNS):
            out.errors.append((lines[0][0], "header must be 'meter_id,key_hex'"))
        body = lines[1:]
    if not body:
        out.errors.append((lines[-1][0] if lines else 1, "no key lines: expected meter_id,key_hex rows"))
    seen: dict[str, int] = {}
    for line, row in body:
        if len(row) != 2:
            out.errors.append((line, f"expected 2 columns (meter_id,key_hex), found {len(row)}"))
            continue
        meter_id = _meter_id(row[0])
        if meter_id is None:
            out.errors.append((line, "meter_id is empty or malformed"))
            continue
        if not _is_key(row[1]):
            out.errors.append((line, f"key for meter {meter_id} is not 32 hex digits (16 bytes)"))
            continue
        if meter_id in seen:
            out.errors.append((line, f"meter {meter_id} already has a key on line {seen[meter_id]}; this line "
                                     "is skipped"))
            continue
        seen[meter_id] = line
        out.rows.append({"meter_id": meter_id, "key": bytes.fromhex(row[1].strip()), "line": line})
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
    if len(text) > TEXT_MAX:
        raise ValueError(f"{column} is longer than {TEXT_MAX} characters")
    if "\x00" in text:
        raise ValueError(f"{column} holds a NUL character")
    if column in FLOAT_COLUMNS:
        value = float(text.replace(",", "."))
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
        if not text.isdigit():
            raise ValueError("register_digits must be a whole number 1..12")
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
    unknown = [c for c in header if c not in METER_COLUMNS and c != MOVE_IN_COLUMN]
    if unknown:
        out.errors.append((1, f"ignored unknown columns: {', '.join(unknown)}"))
    if "aes_key" in header or "key_hex" in header:
        out.errors.append((1, "keys are imported with `meterflow keys import`, not with the registry"))
    columns = tuple(c for c in header if c in METER_COLUMNS)
    out.columns = columns
    seen: dict[str, int] = {}
    for line, row in body:
        if len(row) != len(header):
            out.errors.append((line, f"{len(row)} fields but the header has {len(header)}"))
            continue
        record: dict[str, Any] = {"_line": line}
        try:
            for name, value in zip(header, row, strict=True):
                if name in METER_COLUMNS or name == MOVE_IN_COLUMN:
                    record[name] = _parse_value(name, value)
                    if record[name] is None and name in REQUIRED_IF_NAMED:
                        del record[name]
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
        if record.get(MOVE_IN_COLUMN) and not record.get("customer_ref"):
            out.errors.append((line, "move_in needs the customer_ref who moved in"))
            continue
        if meter_id in seen:
            out.errors.append((line, f"meter {meter_id} already given on line {seen[meter_id]}; this line is skipped"))
            continue
        seen[meter_id] = line
        out.lines[meter_id] = line
        out.rows.append(record)
    return out


def parse_tenancies_csv(text: str) -> ParseResult:
    """meter_id,customer_ref,move_in[,move_out] rows -> typed rows (with `_line`) and (line, reason) errors."""
    header, body = _reader(text)
    out = ParseResult(columns=TENANCY_COLUMNS)
    if header[:3] != list(TENANCY_COLUMNS[:3]) or any(c not in TENANCY_COLUMNS for c in header):
        out.errors.append((1, "header must be meter_id,customer_ref,move_in[,move_out]"))
        return out
    seen: dict[tuple[str, date], int] = {}
    for line, row in body:
        if len(row) != len(header):
            out.errors.append((line, f"{len(row)} fields but the header has {len(header)}"))
            continue
        cells = dict(zip(header, (c.strip() for c in row), strict=True))
        meter_id, customer = _meter_id(cells["meter_id"]), cells["customer_ref"]
        try:
            moved_in = date.fromisoformat(cells["move_in"])
            moved_out = date.fromisoformat(cells["move_out"]) if cells.get("move_out") else None
        except ValueError:
            out.errors.append((line, "move_in/move_out must be dates YYYY-MM-DD"))
            continue
        if meter_id is None or not customer or len(customer) > TEXT_MAX or "\x00" in customer:
            out.errors.append((line, "meter_id or customer_ref is empty or malformed"))
            continue
        if moved_out is not None and moved_out <= moved_in:
            out.errors.append((line, "move_out must be after move_in"))
            continue
        if (meter_id, moved_in) in seen:
            out.errors.append((line, f"meter {meter_id} already moves in on {moved_in} on line "
                                     f"{seen[(meter_id, moved_in)]}; this line is skipped"))
            continue
        seen[(meter_id, moved_in)] = line
        out.rows.append({"meter_id": meter_id, "customer_ref": customer, "move_in": moved_in,
                         "move_out": moved_out, "_line": line})
    return out


def _chunks(rows: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def import_keys(conn: psycopg.Connection, rows: list[dict[str, Any]], progress: Progress | None = None,
                keyring: Keyring | None = None, create_missing: bool = True) -> tuple[int, list[tuple[int, str]]]:
    """Seal and store meter keys; returns (keys written, (line, reason) of the meters not in the registry).
    `keys import` passes create_missing=False so a typo'd id is reported instead of creating a phantom meter;
    fixtures and benchmarks register their meters with their keys. Commits."""
    keyring = keyring or default_keyring()
    if create_missing:
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO meters (meter_id) VALUES (%s) ON CONFLICT (meter_id) DO NOTHING",
                            [(r["meter_id"],) for r in rows])
    known = {r[0] for r in conn.execute("SELECT meter_id FROM meters WHERE meter_id = ANY(%s)",
                                        ([r["meter_id"] for r in rows],))}
    unknown = [(int(r.get("line", 0)), f"meter {r['meter_id']} is not in the registry (meterflow meters import "
                                       "first); its key is not stored") for r in rows if r["meter_id"] not in known]
    todo = [r for r in rows if r["meter_id"] in known]
    done = 0
    with conn.cursor() as cur:
        for chunk in _chunks(todo, 2000):
            cur.executemany(
                "UPDATE meters SET aes_key = %s, updated_at = now() WHERE meter_id = %s",
                [(keyring.seal(r["meter_id"], r["key"]), r["meter_id"]) for r in chunk],
            )
            done += len(chunk)
            if progress:
                progress(done, len(todo))
    conn.commit()
    return done, unknown


def reseal_keys(conn: psycopg.Connection, keyring: Keyring) -> int:
    """Seal every key under the current master key (after a rotation, or legacy plain keys); commits."""
    rows = conn.execute("SELECT meter_id, aes_key FROM meters WHERE aes_key IS NOT NULL").fetchall()
    stale = [(m, bytes(v)) for m, v in rows if not keyring.is_current(bytes(v))]
    with conn.cursor() as cur:
        cur.executemany("UPDATE meters SET aes_key = %s, updated_at = now() WHERE meter_id = %s",
                        [(keyring.seal(m, keyring.open(m, v)), m) for m, v in stale])
    conn.commit()
    return len(stale)


def check_parents(conn: psycopg.Connection, parsed: ParseResult) -> int:
    """A garden sub-meter's parent_meter_id must name a main meter (in this file or already registered): its
    water is taken off that meter's sewage volume. Bad rows move from `rows` to `errors`; returns how many."""
    gardens = [r for r in parsed.rows if r.get("role") == "garden"]
    if not gardens:
        return 0
    in_file = {r["meter_id"]: r.get("role") or "main" for r in parsed.rows}
    if "role" not in parsed.columns:
        in_file = {m: "main" for m in in_file}
    wanted = sorted({str(r["parent_meter_id"]) for r in gardens if r.get("parent_meter_id")})
    stored: dict[str, str] = dict(
        conn.execute("SELECT meter_id, role FROM meters WHERE meter_id = ANY(%s)", (wanted,)).fetchall())
    bad: set[str] = set()
    for r in gardens:
        parent = str(r.get("parent_meter_id") or "")
        role = in_file.get(parent) if parent in in_file else stored.get(parent)
        reason = ""
        if not parent:
            reason = "a garden sub-meter needs parent_meter_id (the main meter it sits behind)"
        elif role is None:
            reason = f"parent_meter_id {parent} is not a registered meter; import the main meter first or in this file"
        elif role != "main":
            reason = f"parent_meter_id {parent} is a {role} meter; a garden sub-meter's parent must be a main meter"
        if reason:
            bad.add(r["meter_id"])
            parsed.errors.append((parsed.lines.get(r["meter_id"], 0), f"meter {r['meter_id']}: {reason}"))
    parsed.rows = [r for r in parsed.rows if r["meter_id"] not in bad]
    parsed.errors.sort()
    return len(bad)


def import_meters(conn: psycopg.Connection, parsed: ParseResult, progress: Progress | None = None) -> int:
    """Upsert registry rows; only the columns present in the file are written (keys are never touched).
    A row the database refuses is added to parsed.errors with its line; the others are kept. A row naming a
    customer opens a tenancy for them when the meter changes hands: from its move_in, else today (a meter's
    first customer: with all its history)."""
    done = 0
    today = date.today()
    with conn.cursor() as cur:
        for chunk in _chunks(parsed.rows, 2000):
            stored = []
            for names, rows in _by_columns(parsed.columns, chunk).items():
                stored += _upsert(conn, cur, names, rows, parsed.errors)
            if "customer_ref" in parsed.columns:
                for r in stored:
                    if r.get("customer_ref"):
                        move_in(conn, r["meter_id"], r["customer_ref"], r.get(MOVE_IN_COLUMN) or today,
                                first_from=None if r.get(MOVE_IN_COLUMN) else FIRST_TENANCY)
            done += len(stored)
            if progress:
                progress(done, len(parsed.rows))
    conn.commit()
    return done


def _by_columns(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Rows grouped by the columns they set (an empty NOT NULL cell sets nothing)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        names = tuple(c for c in columns if c in r)
        groups.setdefault(names, []).append(r)
    return groups


def _upsert(conn: psycopg.Connection, cur: psycopg.Cursor[Any], names: tuple[str, ...], rows: list[dict[str, Any]],
            errors: list[tuple[int, str]]) -> list[dict[str, Any]]:
    """Upsert rows setting exactly `names`; a row the database refuses is reported with its line."""
    columns = [c for c in names if c != "meter_id"]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
    conflict = f"DO UPDATE SET {updates}, updated_at = now()" if columns else "DO NOTHING"
    query = (f"INSERT INTO meters ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})"
             f" ON CONFLICT (meter_id) {conflict}")
    try:
        with conn.transaction():
            cur.executemany(query, [tuple(r[c] for c in names) for r in rows])
        return rows
    except psycopg.Error:
        pass
    stored = []
    for r in rows:  # one by one, to name the refused rows
        try:
            with conn.transaction():
                cur.execute(query, tuple(r[c] for c in names))
            stored.append(r)
        except psycopg.Error as exc:
            reason = (exc.diag.message_primary or type(exc).__name__)[:200]
            errors.append((int(r.get("_line", 0)), f"refused by the database: {reason}"))
    return stored


def load_keys(conn: psycopg.Connection, keyring: Keyring | None = None) -> dict[str, bytes]:
    """meter_id -> decrypted AES key for every meter that has one (for the decoder; never print these).
    Raises meterflow.secrets.SecretError when a key was sealed with a master key that is not configured."""
    keyring = keyring or default_keyring()
    rows = conn.execute("SELECT meter_id, aes_key FROM meters WHERE aes_key IS NOT NULL").fetchall()
    return {m: keyring.open(m, bytes(v)) for m, v in rows}


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
