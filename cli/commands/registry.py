"""`meterflow keys import` and `meterflow meters import|list`: the meter registry and AES keys."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import click

from meterflow.config import Settings


def _progress(label: str) -> Any:
    def report(done: int, total: int) -> None:
        click.echo(f"\r{label}: {done}/{total}", nl=False, err=True)
        if done >= total:
            click.echo("", err=True)

    return report


def _report_errors(errors: list[tuple[int, str]], path: str) -> None:
    for line, reason in errors[:200]:
        click.echo(f"{path}:{line}: {reason}", err=True)
    if len(errors) > 200:
        click.echo(f"... and {len(errors) - 200} more", err=True)


def _connect(settings: Settings) -> Any:
    from cli.embedded import database_dsn
    from storage.db import connect
    from storage.migrate import upgrade

    conn = connect(database_dsn(settings))
    upgrade(conn, settings.timezone)
    return conn


@click.group(epilog="Example: meterflow keys import keys.csv")
def keys() -> None:
    """AES keys of meters (stored in the registry; never printed or exported)."""


@keys.command("import", epilog="Example: meterflow keys import keys.csv   # lines: meter_id,key_hex")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def keys_import(settings: Settings, file: str) -> None:
    """Insert or update meter keys from a CSV of meter_id,key_hex (32 hex digits)."""
    from storage.registry import import_keys, parse_keys_csv

    parsed = parse_keys_csv(Path(file).read_text(encoding="utf-8"))
    _report_errors(parsed.errors, file)
    with _connect(settings) as conn:
        n = import_keys(conn, parsed.rows, progress=_progress("keys") if len(parsed.rows) > 5000 else None)
    click.echo(f"keys: {n} imported, {len(parsed.errors)} lines rejected")
    if parsed.errors and not parsed.rows:
        sys.exit(1)


@click.group(epilog="Example: meterflow meters import registry.csv")
def meters() -> None:
    """The meter registry: premises, customers, districts, install/removal dates and indexes."""


@meters.command("import", epilog="Example: meterflow meters import registry.csv")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def meters_import(settings: Settings, file: str) -> None:
    """Insert or update meters from CSV (header names as in table meters). Bad rows are reported with
    their line number and reason; the good rows are imported."""
    from storage.registry import check_parents, import_meters, parse_meters_csv

    parsed = parse_meters_csv(Path(file).read_text(encoding="utf-8"))
    n = 0
    with _connect(settings) as conn:
        check_parents(conn, parsed)  # a garden's parent must be a main meter: a bad row otherwise
        _report_errors(parsed.errors, file)
        if parsed.rows:
            n = import_meters(conn, parsed, progress=_progress("meters") if len(parsed.rows) > 5000 else None)
    click.echo(f"meters: {n} imported, {len(parsed.errors)} problems reported")
    if not parsed.rows and parsed.errors:
        sys.exit(1)


@meters.command("list", epilog="Example: meterflow meters list --district DMA-07 --format csv > dma7.csv")
@click.option("--district", default=None, help="Only meters of this district (DMA).")
@click.option("--limit", type=int, default=None, help="At most this many meters.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.pass_obj
def meters_list(settings: Settings, district: str | None, limit: int | None, fmt: str) -> None:
    """List registered meters (keys are never shown; only whether one is known)."""
    from storage.registry import list_meters

    with _connect(settings) as conn:
        rows = list_meters(conn, district, limit)
    if fmt == "json":
        for row in rows:
            click.echo(json.dumps(row, default=str))
        return
    if fmt == "csv":
        if rows:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return
    cols = ["meter_id", "district", "premise_ref", "customer_ref", "install_date", "register_digits", "has_key"]
    widths = {c: max([len(c)] + [len("" if r[c] is None else str(r[c])) for r in rows]) for c in cols}
    click.echo("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        click.echo("  ".join(("" if r[c] is None else str(r[c])).ljust(widths[c]) for c in cols))
    click.echo(f"{len(rows)} meters", err=True)
