"""`meterflow db ...`: schema management."""

from __future__ import annotations

import click

from meterflow.config import Settings


@click.group(epilog="Example: meterflow db upgrade && meterflow db status")
def db() -> None:
    """Database schema and status."""


@db.command("upgrade", epilog="Example: METERFLOW_DATABASE_URL=postgresql://localhost/meterflow meterflow db upgrade")
@click.pass_obj
def upgrade_cmd(settings: Settings) -> None:
    """Create or migrate the schema (ordered, idempotent); TimescaleDB features when the extension exists."""
    from cli.embedded import database_dsn
    from storage import flavor
    from storage.db import connect
    from storage.migrate import upgrade

    with connect(database_dsn(settings)) as conn:
        applied = upgrade(conn, settings.timezone)
        kind = flavor.current(conn)
    click.echo(f"schema up to date ({kind}); applied {len(applied)} migration(s)" +
               (": " + ", ".join(applied) if applied else ""))


@db.command("status", epilog="Example: meterflow db status")
@click.pass_obj
def status_cmd(settings: Settings) -> None:
    """Show the flavour, applied migrations and row counts of the main tables."""
    from cli.embedded import database_dsn
    from storage.db import connect

    with connect(database_dsn(settings)) as conn:
        rows = conn.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version").fetchall()
        for version, name, at in rows:
            click.echo(f"{version}  {name:<28} {at:%Y-%m-%d %H:%M}")
        for table in ("meters", "readings", "raw_frames", "dead_letters", "alerts", "billing_results"):
            n = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            click.echo(f"{table:<16} {n[0] if n else 0}")
