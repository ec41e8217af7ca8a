"""Tariff changes per tariff group (table tariff_changes): add, list, and the frame billing splits periods by.

A change takes effect at local midnight of `effective_date` for the meters of its group only; a meter without
a `tariff_group` in the registry is in the group 'default'.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import polars as pl
import psycopg

DEFAULT_GROUP = "default"


@dataclass(frozen=True)
class TariffChange:
    """One row of tariff_changes."""

    tariff_group: str
    effective_date: date
    tariff_code: str
    note: str
    created_by: str
    created_at: datetime


class TariffExists(ValueError):
    """The group already has a change on that day."""


def add_tariff(conn: psycopg.Connection, group: str, effective: date, *, note: str = "", code: str | None = None,
               actor: str = "cli") -> TariffChange:
    """Record a tariff change of one group; refuses a second change of the same group on the same day."""
    group = group.strip()
    if not group:
        raise ValueError("the tariff group is empty; give --group, e.g. --group G1")
    row = conn.execute(
        "INSERT INTO tariff_changes (tariff_group, effective_date, tariff_code, note, created_by)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tariff_group, effective_date) DO NOTHING"
        " RETURNING tariff_group, effective_date, tariff_code, note, created_by, created_at",
        (group, effective, code or group, note, actor),
    ).fetchone()
    conn.commit()
    if row is None:
        raise TariffExists(f"group {group} already has a tariff change on {effective}")
    return TariffChange(*row)


def list_tariffs(conn: psycopg.Connection, group: str | None = None) -> list[TariffChange]:
    where, params = ("WHERE tariff_group = %s", [group]) if group else ("", [])
    rows = conn.execute(
        "SELECT tariff_group, effective_date, tariff_code, note, created_by, created_at FROM tariff_changes "
        f"{where} ORDER BY tariff_group, effective_date", params
    ).fetchall()
    return [TariffChange(*r) for r in rows]


def load_tariffs(conn: psycopg.Connection) -> pl.DataFrame:
    """The changes billing splits periods by: effective_date and tariff_group."""
    rows = conn.execute("SELECT effective_date, tariff_group FROM tariff_changes ORDER BY effective_date").fetchall()
    return pl.DataFrame(rows, schema={"effective_date": pl.Date, "tariff_group": pl.String}, orient="row")
