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


def migrated_connection(settings: Settings) -> Any:
    """A connection to the configured database with the schema brought up to date."""
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
    """Store meter keys from a CSV of meter_id,key_hex (32 hex digits), sealed with the master key. Meters must
    be registered first (an unknown id is reported, never created). Exits 1 when any line was rejected."""
    from meterflow.secrets import Keyring, SecretError
    from storage.registry import import_keys, parse_keys_csv

    parsed = parse_keys_csv(read_text_file(file))
    try:
        keyring = Keyring.from_settings(settings)
    except SecretError as exc:
        raise click.ClickException(str(exc)) from exc
    n = 0
    if parsed.rows:
        with migrated_connection(settings) as conn:
            n, unknown = import_keys(conn, parsed.rows, progress=_progress("keys") if len(parsed.rows) > 5000 else None,
                                     keyring=keyring, create_missing=False)
        parsed.errors.extend(unknown)
    _finish("keys", n, parsed.errors, file)


@keys.command("master-key", epilog="Example: meterflow keys master-key > /etc/meterflow/master-key && "
                                   "chmod 600 /etc/meterflow/master-key")
def keys_master_key() -> None:
    """Print a new random master key (base64 of 32 bytes) for settings secrets.master_key."""
    from meterflow.secrets import new_master_key

    click.echo(new_master_key())


@keys.command("rotate", epilog="Example: METERFLOW_SECRETS__MASTER_KEY=NEW METERFLOW_SECRETS__PREVIOUS_MASTER_KEYS="
                               "'[\"OLD\"]' meterflow keys rotate")
@click.pass_obj
def keys_rotate(settings: Settings) -> None:
    """Reseal every stored key under the current master key (after setting a new one and listing the old one in
    secrets.previous_master_keys); plain keys of older versions are sealed too."""
    from meterflow.secrets import Keyring, SecretError
    from storage.registry import reseal_keys

    try:
        keyring = Keyring.from_settings(settings)
        with migrated_connection(settings) as conn:
            n = reseal_keys(conn, keyring)
    except SecretError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"keys: {n} resealed under the current master key")


def read_text_file(path: str) -> str:
    """A CSV file as text; a binary or non-UTF-8 file is one clear error, not a traceback."""
    raw = Path(path).read_bytes()
    if not raw.strip():
        raise click.ClickException(f"{path} is empty")
    if b"\x00" in raw[:4096] or raw[:2] == b"\x1f\x8b":
        raise click.ClickException(f"{path} is a binary file, not a CSV text file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8 CSV") from exc


def _finish(what: str, stored: int, errors: list[tuple[int, str]], path: str) -> None:
    """Report rejected lines; exit 1 when there were any (the report says how many)."""
    _report_errors(sorted(errors), path)
    click.echo(f"{what}: {stored} imported, {len(errors)} lines rejected")
    if errors:
        sys.exit(1)


@click.group(epilog="Example: meterflow meters import registry.csv")
def meters() -> None:
    """The meter registry: premises, customers, districts, install/removal dates and indexes."""


@meters.command("import", epilog="Example: meterflow meters import registry.csv")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def meters_import(settings: Settings, file: str) -> None:
    """Insert or update meters from CSV (header names as in table meters; optional move_in: the day the row's
    customer_ref took the meter over). Only the named columns are written. Bad rows are reported with their
    line number and reason and the good rows imported; exits 1 when any row was rejected."""
    from storage.registry import check_parents, import_meters, parse_meters_csv

    parsed = parse_meters_csv(read_text_file(file))
    n = 0
    with migrated_connection(settings) as conn:
        check_parents(conn, parsed)  # a garden's parent must be a main meter: a bad row otherwise
        if parsed.rows:
            n = import_meters(conn, parsed, progress=_progress("meters") if len(parsed.rows) > 5000 else None)
    _finish("meters", n, parsed.errors, file)


@meters.command("tenancies", epilog="Example: meterflow meters tenancies moves.csv   "
                                    "# meter_id,customer_ref,move_in[,move_out]")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def meters_tenancies(settings: Settings, file: str) -> None:
    """Who was the customer of a meter from when to when (move_out exclusive, empty = still there): a customer
    sees a meter's data only within their own tenancy. Exits 1 when any row was rejected."""
    from storage.registry import parse_tenancies_csv
    from storage.tenancy import import_tenancies

    parsed = parse_tenancies_csv(read_text_file(file))
    n = 0
    if parsed.rows:
        with migrated_connection(settings) as conn:
            known = {r[0] for r in conn.execute("SELECT meter_id FROM meters WHERE meter_id = ANY(%s)",
                                                ([r["meter_id"] for r in parsed.rows],))}
            parsed.errors += [(r["_line"], f"meter {r['meter_id']} is not in the registry")
                              for r in parsed.rows if r["meter_id"] not in known]
            n = import_tenancies(conn, [r for r in parsed.rows if r["meter_id"] in known])
    _finish("tenancies", n, parsed.errors, file)


@meters.command("list", epilog="Example: meterflow meters list --district DMA-07 --format csv > dma7.csv")
@click.option("--district", default=None, help="Only meters of this district (DMA).")
@click.option("--limit", type=int, default=None, help="At most this many meters.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.pass_obj
def meters_list(settings: Settings, district: str | None, limit: int | None, fmt: str) -> None:
    """List registered meters (keys are never shown; only whether one is known)."""
    from storage.registry import list_meters

    with migrated_connection(settings) as conn:
        rows = list_meters(conn, district, limit)
    if fmt == "json":
        for row in rows:
            click.echo(json.dumps(row, default=str))
        return
    if fmt == "csv":
        if rows:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
            writer.writeheader()
            from meterflow.spreadsheet import safe_cell

            writer.writerows({k: safe_cell(v) for k, v in row.items()} for row in rows)
        return
    cols = ["meter_id", "district", "premise_ref", "customer_ref", "install_date", "register_digits", "has_key"]
    widths = {c: max([len(c)] + [len("" if r[c] is None else str(r[c])) for r in rows]) for c in cols}
    click.echo("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        click.echo("  ".join(("" if r[c] is None else str(r[c])).ljust(widths[c]) for c in cols))
    click.echo(f"{len(rows)} meters", err=True)
