"""`meterflow billing ...`: run, export, serve."""

from __future__ import annotations

import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import click
import psycopg

from meterflow.config import Settings


def period_options(fn: Any) -> Any:
    """--from (inclusive) / --to (exclusive) or --period YYYY-MM: the one period convention (meterflow/periods.py)."""
    fn = click.option("--period", "period", default=None, help="A calendar month YYYY-MM (instead of --from/--to).")(fn)
    fn = click.option("--to", "date_to", default=None,
                      help="Day after the period, EXCLUSIVE (YYYY-MM-DD; YYYY-MM = the 1st of that month).")(fn)
    return click.option("--from", "date_from", default=None,
                        help="First day of the period, inclusive (YYYY-MM-DD; YYYY-MM = the 1st).")(fn)


def resolve_period(date_from: str | None, date_to: str | None, period: str | None) -> tuple[date, date]:
    from meterflow.periods import PeriodError, period_bounds

    try:
        return period_bounds(date_from, date_to, period)
    except PeriodError as exc:
        raise click.UsageError(str(exc)) from exc


def _progress(label: str) -> Any:
    def show(done: int, total: int) -> None:
        click.echo(f"\r{label}: {done}/{total} chunks", err=True, nl=done == total)

    return show


@click.group(epilog="Example: meterflow billing run --from 2024-03-01 --to 2024-04-01")
def billing() -> None:
    """Billing consumption per meter and period, validated, estimated and edited (VEE)."""


@billing.command("run", epilog="Example: meterflow billing run --from 2024-03-01 --to 2024-04-01 --chunk-size 2000")
@period_options
@click.option("--chunk-size", default=2000, show_default=True, help="Meters per task (meter-range chunk).")
@click.option("--prefect/--no-prefect", default=False, show_default=True,
              help="Run as the Prefect flow billing-period (needs or starts a Prefect backend).")
@click.option("--work-pool", default=None,
              help="Run every chunk as a deployment run on this Prefect work pool (PREFECT_API_URL; workers: "
                   "prefect worker start --pool NAME, with the METERFLOW_* settings in their environment).")
@click.pass_obj
def run_cmd(settings: Settings, date_from: str | None, date_to: str | None, period: str | None, chunk_size: int,
            prefect: bool, work_pool: str | None) -> None:
    """Compute consumption for [FROM, TO) (or the month --period) for every meter and store a new billing run."""
    start, end = resolve_period(date_from, date_to, period)
    from cli.embedded import database_dsn

    started = time.perf_counter()
    try:
        database_dsn(settings)  # the flow loads its own settings: the DSN travels in the environment
        if work_pool:
            from pipelines.billing import billing_period_pool, pool_deployment

            pool_deployment(work_pool)
            totals = billing_period_pool(start, end, chunk_size)
            run_id = totals.pop("run_id")
        elif prefect:
            from pipelines.billing import billing_period

            totals = billing_period(start, end, chunk_size)
            run_id = totals.pop("run_id")
        else:
            from pipelines.billing import run_billing

            run_id, totals = run_billing(settings, start, end, chunk_size=chunk_size,
                                         progress=_progress("billing"))
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    except psycopg.Error as exc:
        raise click.ClickException(_db_hint(exc)) from exc
    elapsed = time.perf_counter() - started
    click.echo(json.dumps({"run_id": run_id, **totals}, sort_keys=True))
    click.echo(f"billing run {run_id}: {totals.get('meters', 0)} meters, {totals.get('with_exceptions', 0)} with "
               f"exceptions, in {elapsed:.1f} s. Next: meterflow billing export --from {start} --to {end}"
               " --format csv", err=True)


@billing.command("export", epilog="Example: meterflow billing export --from 2024-03-01 --to 2024-04-01 "
                                  "--format parquet --out march.parquet")
@period_options
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "parquet"]), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Output file (default: stdout).")
@click.pass_obj
def export_cmd(settings: Settings, date_from: str | None, date_to: str | None, period: str | None, fmt: str,
               out: str | None) -> None:
    """Export the latest results for the periods inside [FROM, TO) (one row per meter and tariff segment), with
    customer, premise, water and sewage volume: the same rows as GET /api/v1/billing/consumption."""
    start, end = resolve_period(date_from, date_to, period)
    import polars as pl

    from cli.embedded import database_dsn
    from storage.billing import EXPORT_COLUMNS, load_results
    from storage.db import connect

    if fmt == "parquet" and out is None:
        raise click.UsageError("parquet is binary: give --out FILE")
    try:
        with connect(database_dsn(settings)) as conn:
            df = load_results(conn, start, end).select(EXPORT_COLUMNS)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc
    except psycopg.Error as exc:
        raise click.ClickException(_db_hint(exc)) from exc
    if df.is_empty():
        click.echo(f"no billing results for periods within [{start}, {end}); "
                   f"run: meterflow billing run --from {start} --to {end}", err=True)
    if fmt == "parquet":
        df.write_parquet(str(out))
    elif fmt == "csv":
        from meterflow.spreadsheet import safe_frame

        text = safe_frame(df.with_columns(pl.col("exceptions").list.join("|"))).write_csv()
        _write(text, out)
    else:
        _write(json.dumps(df.to_dicts(), indent=1, default=str) + "\n", out)
    if out:
        click.echo(f"wrote {df.height} rows to {out}", err=True)


def _write(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        Path(out).write_text(text)


@billing.command("serve", epilog="Example: PREFECT_API_URL=http://127.0.0.1:4200/api meterflow billing serve")
@click.option("--cron", default="0 3 2 * *", show_default=True, help="Schedule in the settings timezone.")
@click.option("--work-pool", default=None,
              help="Register the monthly deployment and its chunk deployment on this work pool and return: the "
                   "pool's workers (prefect worker start --pool NAME) run it.")
@click.pass_obj
def serve_cmd(settings: Settings, cron: str, work_pool: str | None) -> None:
    """Serve the billing-period flow as a deployment with a monthly schedule (blocks; Ctrl-C to stop).

    Each run bills the previous calendar month. Start a Prefect server first (prefect server start) and set
    PREFECT_API_URL, or a temporary one is started for this process. With --work-pool the deployments are
    registered on the pool instead, and the command returns."""
    from cli.embedded import database_dsn
    from pipelines.billing import pool_deployment, pool_monthly_deployment, serve

    database_dsn(settings)  # flow runs load their own settings: the DSN travels in the environment
    if work_pool:
        pool_deployment(work_pool)
        dep = pool_monthly_deployment(work_pool, cron=cron, timezone=settings.timezone)
        dep.apply(work_pool_name=work_pool)
        click.echo(f"registered billing-period-pool/{dep.name} on work pool {work_pool!r}, cron {cron!r} "
                   f"({settings.timezone}); start workers: prefect worker start --pool {work_pool}", err=True)
        return
    click.echo(f"serving billing-period/monthly on cron {cron!r} ({settings.timezone})", err=True)
    serve(cron=cron, timezone=settings.timezone)


def _db_hint(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
        return f"{first}: the schema is not current; run: meterflow db upgrade"
    return f"database error: {first}"
