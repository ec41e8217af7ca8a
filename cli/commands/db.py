"""`meterflow db ...`: schema management, storage status and maintenance."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from meterflow.config import Settings

if TYPE_CHECKING:
    import psycopg


@click.group(epilog="Example: meterflow db upgrade && meterflow db status")
def db() -> None:
    """Database schema, status and maintenance."""


def _flavour_line(conn: psycopg.Connection) -> str:
    from storage import flavor

    row = conn.execute("SELECT value FROM meterflow_meta WHERE key = 'flavor_reason'").fetchone()
    return f"flavour: {flavor.current(conn)} ({row[0] if row else 'chosen at the first upgrade'})"


@db.command("upgrade", epilog="Example: METERFLOW_DATABASE_URL=postgresql://localhost/meterflow meterflow db upgrade")
@click.pass_obj
def upgrade_cmd(settings: Settings) -> None:
    """Create or migrate the schema (ordered, idempotent); TimescaleDB when the server has it preloaded."""
    from cli.embedded import database_dsn
    from storage import flavor
    from storage.db import connect
    from storage.migrate import upgrade

    with connect(database_dsn(settings)) as conn:
        applied = upgrade(conn, settings.timezone)
        kind = flavor.current(conn)
        line = _flavour_line(conn)
    if "WARNING" in line:
        click.echo(line, err=True)
    else:
        click.echo(line)
    click.echo(f"schema up to date ({kind}); applied {len(applied)} migration(s)" +
               (": " + ", ".join(applied) if applied else ""))


@db.command("status", epilog="Example: meterflow db status")
@click.pass_obj
def status_cmd(settings: Settings) -> None:
    """Flavour and why, migrations, row counts, failing TimescaleDB jobs and the maintenance state."""
    from cli.embedded import database_dsn
    from storage import maintenance
    from storage.db import connect

    with connect(database_dsn(settings)) as conn:
        click.echo(_flavour_line(conn))
        rows = conn.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version").fetchall()
        for version, name, at in rows:
            click.echo(f"{version}  {name:<28} {at:%Y-%m-%d %H:%M}")
        for table in ("meters", "readings", "raw_frames", "dead_letters", "alerts", "billing_results"):
            n = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            if table == "readings":
                packed = conn.execute("SELECT coalesce(sum(n), 0) FROM readings_packed").fetchone()
                hot, cold = (n[0] if n else 0), int(packed[0]) if packed else 0
                click.echo(f"{table:<16} {hot + cold}" + (f" ({cold} in packed months)" if cold else ""))
                continue
            click.echo(f"{table:<16} {n[0] if n else 0}")
        state = maintenance.status(conn, policy=maintenance.policy_of(settings))
    for job in state.jobs:
        health = "FAILING" if job.failing else "ok"
        when = f"{job.last_run:%Y-%m-%d %H:%M}" if job.last_run else "never"
        click.echo(f"job {job.job_id} {job.proc} {job.relation}: {health}, last run {when} {job.last_status or ''},"
                   f" {job.failures} failure(s) in {job.runs} run(s)" + (f": {job.error}" if job.error else ""))
    due = ", ".join(f"{k} {v}" for k, v in state.due.items())
    last = state.last_run
    click.echo(f"maintenance: due {due}; last run " +
               (f"{last['at']}" if last else "never"))
    if state.failing_jobs:
        click.echo(f"WARNING: {len(state.failing_jobs)} TimescaleDB job(s) failing: nothing is compressed, expired or"
                   " refreshed by the server; run `meterflow db maintain` (the hourly flow runs it too)", err=True)


@db.command("maintain", epilog="Examples: meterflow db maintain; after importing years of history:"
                                " meterflow db maintain --pack-months all")
@click.option("--pack-months", default="1", show_default=True, metavar="N|all",
              help="Closed months to pack in this run (plain PostgreSQL), oldest first.")
@click.pass_obj
def maintain_cmd(settings: Settings, pack_months: str) -> None:
    """Compress or pack, expire, archive old raw frames and refresh now, whatever the server's jobs did."""
    from dataclasses import replace

    from cli.embedded import database_dsn
    from storage import maintenance
    from storage.db import connect

    if pack_months != "all" and not (pack_months.isdigit() and int(pack_months) >= 1):
        raise click.BadParameter("give a number of months (1, 2, ...) or 'all'", param_hint="--pack-months")
    policy = replace(maintenance.policy_of(settings), pack_months=None if pack_months == "all" else int(pack_months))
    with connect(database_dsn(settings)) as conn:
        report = maintenance.maintain(conn, policy=policy)
    click.echo(f"maintenance ({report.flavor}): {report.summary()}")


@db.command("web-role", epilog="Example: WEB_DB_PASSWORD=... meterflow db web-role meterflow_web "
                               "--password-env WEB_DB_PASSWORD")
@click.argument("role")
@click.option("--password-env", default=None, help="Name of an environment variable holding the role's password.")
@click.pass_obj
def web_role_cmd(settings: Settings, role: str, password_env: str | None) -> None:
    """Create (or refresh) the database role `meterflow serve` should use: it reads and writes what the pages
    and the API need but cannot read meters.aes_key. Re-run after `meterflow db upgrade`."""
    import os

    from cli.embedded import database_dsn
    from storage.db import connect
    from storage.roles import create_web_role

    password = os.environ.get(password_env) if password_env else None
    if password_env and not password:
        raise click.ClickException(f"environment variable {password_env} is empty or unset")
    try:
        with connect(database_dsn(settings)) as conn:
            hidden = create_web_role(conn, role, password)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"role {role} ready; it cannot read {', '.join(hidden)}. Serve with a METERFLOW_DATABASE_URL "
               f"that logs in as {role}.")
