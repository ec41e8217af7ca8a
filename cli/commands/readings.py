"""`meterflow readings import FILE` (historical exports) and `meterflow readings add` (customer self-reads)."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import psycopg

from meterflow.config import Settings


@click.group(epilog="Example: meterflow readings import history.csv.gz --preset daiad")
def readings() -> None:
    """Import historical readings and add manual (customer) reads."""


@readings.command(
    "import",
    epilog="Example: meterflow readings import swm_trialA_public.csv.gz --delimiter ';' --meter-column 'user key' "
    "--time-column datetime --value-column 'meter reading' --time-format '%d/%m/%Y %H:%M:%S' --unit litres "
    "--timezone Europe/Madrid   (or: --preset daiad, or --mapping daiad.toml)",
)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--mapping", "mapping_file", type=click.Path(exists=True, dir_okay=False),
              help="TOML file with delimiter, meter_column, time_column, value_column, time_format, unit, timezone.")
@click.option("--preset", type=click.Choice(["canonical", "daiad"]), default=None,
              help="A built-in mapping (canonical: meter_id,time,total_m3 in UTC ISO 8601 and m3).")
@click.option("--delimiter", default=None, help="Field separator (default ',').")
@click.option("--meter-column", default=None, help="Column with the meter id (default meter_id).")
@click.option("--time-column", default=None, help="Column with the read time (default time).")
@click.option("--value-column", default=None, help="Column with the cumulative index (default total_m3).")
@click.option("--time-format", default=None, help="strftime pattern, e.g. '%d/%m/%Y %H:%M:%S' (default ISO 8601).")
@click.option("--unit", type=click.Choice(["m3", "litres"]), default=None, help="Unit of the index (default m3).")
@click.option("--timezone", default=None, help="Zone of times without an offset (default: settings timezone).")
@click.option("--rejects", type=click.Path(dir_okay=False), default=None,
              help="Write bad rows and conflicting rows (line, reason, raw) to this CSV file.")
@click.option("--dry-run", is_flag=True, help="Parse and report only; store nothing.")
@click.option("--register-meters", is_flag=True,
              help="Add meters missing from the registry (defaults only), so billing includes them.")
@click.pass_obj
def import_cmd(settings: Settings, file: str, mapping_file: str | None, preset: str | None, delimiter: str | None,
               meter_column: str | None, time_column: str | None, value_column: str | None,
               time_format: str | None, unit: str | None, timezone: str | None, rejects: str | None,
               dry_run: bool, register_meters: bool) -> None:
    """Import readings from FILE (CSV, gzip accepted) as source='import'.

    Bad rows are reported with line number and reason; good rows are all kept. Exact duplicates of stored reads
    collapse; a read with the same meter and time but another value is kept in reading_conflicts and reported."""
    from decoders.csv_readings import PRESETS, Mapping, file_checks, parse_lines, read_lines

    overrides = {"delimiter": delimiter, "meter_column": meter_column, "time_column": time_column,
                 "value_column": value_column, "time_format": time_format, "unit": unit, "timezone": timezone}
    try:
        if mapping_file:
            mapping = Mapping.from_toml(mapping_file, **overrides)
        else:
            base = PRESETS[preset] if preset else Mapping(timezone=settings.timezone)
            mapping = base.with_overrides(**overrides)
        started = time.perf_counter()
        click.echo(f"reading {file} ...", err=True)
        lines = read_lines(file)
        result = parse_lines(lines, mapping)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    stats: dict[str, Any] = dict(result.stats)
    stats.update(file_checks(result.good))
    click.echo(f"parsed {stats['lines']:,} rows in {time.perf_counter() - started:.1f} s: {stats['good']:,} good, "
               f"{stats['bad']:,} bad, {stats['meters']} meters", err=True)
    for row in result.bad.head(20).iter_rows(named=True):
        click.echo(f"  line {row['line']}: {row['reason']}: {row['raw'][:100]}", err=True)
    if result.bad.height > 20:
        click.echo(f"  ... {result.bad.height - 20} more bad rows" + ("" if rejects else "; use --rejects FILE"),
                   err=True)
    conflicts: list[dict[str, object]] = []
    if not dry_run:
        from cli.embedded import database_dsn
        from storage.billing import import_readings, unregistered_meters
        from storage.billing import register_meters as add_meters
        from storage.db import connect

        def progress(stage: str, done: int, total: int) -> None:
            click.echo(f"\r{stage}: {done:,}/{total:,} rows", err=True, nl=done == total)

        try:
            with connect(database_dsn(settings)) as conn:
                st = import_readings(conn, result.good, file=Path(file).name, progress=progress)
                unknown = unregistered_meters(conn, result.good["meter_id"].unique().to_list())
                if unknown and register_meters:
                    add_meters(conn, unknown)
                    click.echo(f"added {len(unknown)} meters to the registry", err=True)
                elif unknown:
                    click.echo(f"{len(unknown)} meters are not in the registry and billing ignores them: add them "
                               "(meterflow meters ...) or re-run with --register-meters", err=True)
                stats["unregistered_meters"] = 0 if register_meters else len(unknown)
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from exc
        except psycopg.Error as exc:
            raise click.ClickException(_db_hint(exc)) from exc
        stats.update(st.as_dict())
        conflicts = st.conflicts
        for c in conflicts[:20]:
            click.echo(f"  line {c['line']}: conflict: {c['meter_id']} at {c['time']} has {c['total_m3']} m3 in the "
                       f"file but {c['stored_m3']} m3 stored (kept in reading_conflicts)", err=True)
    if rejects:
        with open(rejects, "w") as fh:
            fh.write("line,reason,raw\n")
            for row in result.bad.iter_rows(named=True):
                fh.write(f"{row['line']},{json.dumps(row['reason'])},{json.dumps(row['raw'])}\n")
            for c in conflicts:
                fh.write(f"{c['line']},\"conflict: stored {c['stored_m3']} m3\",\"{c['meter_id']} {c['time']} "
                         f"{c['total_m3']}\"\n")
    stats["seconds"] = round(time.perf_counter() - started, 2)
    click.echo(json.dumps(stats, sort_keys=True))
    if result.bad.height and not rejects:
        click.echo("bad rows were not stored; fix them at the source or re-run with --rejects FILE to list all",
                   err=True)


@readings.command("add", epilog="Example: meterflow readings add --meter 12345678 --time 2024-03-31T18:00:00+02:00 "
                                "--index 123.456")
@click.option("--meter", "meter_id", required=True, help="Meter number as printed on the meter.")
@click.option("--time", "when", required=True, help="When it was read, ISO 8601 with offset (naive = settings tz).")
@click.option("--index", "index_m3", required=True, type=float, help="The index in m3.")
@click.option("--allow-decrease", is_flag=True, help="Accept an index below the last one (meter replaced, rollover).")
@click.option("--note", default=None, help="Free text kept with the read.")
@click.pass_obj
def add_cmd(settings: Settings, meter_id: str, when: str, index_m3: float, allow_decrease: bool,
            note: str | None) -> None:
    """Add a manual (customer self-) read, validated like any other read, as source='manual'."""
    from zoneinfo import ZoneInfo

    from cli.embedded import database_dsn
    from storage.billing import ManualReadError, add_manual_read
    from storage.db import connect

    try:
        at = datetime.fromisoformat(when)
    except ValueError as exc:
        raise click.BadParameter(f"{when!r} is not ISO 8601; e.g. 2024-03-31T18:00:00+02:00", param_hint="--time")\
            from exc
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(settings.timezone))
    try:
        with connect(database_dsn(settings)) as conn:
            out = add_manual_read(conn, meter_id, at, index_m3, allow_decrease=allow_decrease, note=note,
                                  future_tolerance_s=settings.vee.future_tolerance_s)
    except ManualReadError as exc:
        raise click.ClickException(str(exc)) from exc
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    except psycopg.Error as exc:
        raise click.ClickException(_db_hint(exc)) from exc
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


def _db_hint(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
        return f"{first}: the schema is not current; run: meterflow db upgrade"
    return f"database error: {first}"
