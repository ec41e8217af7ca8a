"""`meterflow tariffs ...`: tariff changes per tariff group (add, list); billing splits a meter's period at
the changes of its own group only."""

from __future__ import annotations

import getpass
import json
from datetime import date

import click
import psycopg

from meterflow.config import Settings


@click.group(epilog="Example: meterflow tariffs add --group G1 --effective 2026-07-01 --note 'new water price'")
def tariffs() -> None:
    """Tariff changes per tariff group (meters.tariff_group; a meter without one is in 'default')."""


@tariffs.command("add", epilog="Example: meterflow tariffs add --group G1 --effective 2026-07-01 --note 'price 2026'")
@click.option("--group", required=True, help="Tariff group as in the registry column tariff_group ('default': "
                                              "meters without one).")
@click.option("--effective", required=True, help="Day the tariff takes effect, at local midnight (YYYY-MM-DD).")
@click.option("--note", default="", help="Free text, e.g. the council resolution.")
@click.option("--code", default=None, help="Tariff code (default: the group name).")
@click.option("--by", "actor", default=None, help="Who records it (default: the login name).")
@click.pass_obj
def add_cmd(settings: Settings, group: str, effective: str, note: str, code: str | None, actor: str | None) -> None:
    """Record a tariff change of one group: periods of that group's meters spanning the day are split there."""
    from cli.embedded import database_dsn
    from storage.db import connect
    from storage.tariffs import TariffExists, add_tariff

    try:
        day = date.fromisoformat(effective)
    except ValueError as exc:
        raise click.BadParameter(f"{effective!r} is not a date; use YYYY-MM-DD, e.g. 2026-07-01",
                                 param_hint="--effective") from exc
    try:
        with connect(database_dsn(settings)) as conn:
            change = add_tariff(conn, group, day, note=note, code=code, actor=actor or getpass.getuser())
    except (TariffExists, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    except psycopg.Error as exc:
        raise click.ClickException(f"database error: {str(exc).strip().splitlines()[0]}") from exc
    click.echo(json.dumps({"tariff_group": change.tariff_group, "effective_date": str(change.effective_date),
                           "tariff_code": change.tariff_code, "note": change.note}))


@tariffs.command("list", epilog="Example: meterflow tariffs list --group G1")
@click.option("--group", default=None, help="Only this group.")
@click.pass_obj
def list_cmd(settings: Settings, group: str | None) -> None:
    """Every tariff change, by group and date (tab-separated: group, effective date, code, note, by)."""
    from cli.embedded import database_dsn
    from storage.db import connect
    from storage.tariffs import list_tariffs

    with connect(database_dsn(settings)) as conn:
        rows = list_tariffs(conn, group)
    click.echo("tariff_group\teffective_date\ttariff_code\tnote\tcreated_by")
    for t in rows:
        click.echo(f"{t.tariff_group}\t{t.effective_date}\t{t.tariff_code}\t{t.note}\t{t.created_by}")
    if not rows:
        click.echo("no tariff changes; add one: meterflow tariffs add --group G1 --effective 2026-07-01", err=True)
