"""`meterflow bench pages`: the fleet and meter pages rendered end to end (routing, auth, queries, figures,
template) on a scratch fleet, next to the time of the chart queries behind each page measured in the same
run: the ratio says how much the page adds on top of its queries (figures and HTML).

The fleet is the one `meterflow bench charts` builds (meters, a year of daily rollups, a week of hourly,
district_daily, alerts, dead letters, billing results). Requests go through the real ASGI app in-process
(httpx's ASGI transport), signed in as "bench"."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime

import click
import psycopg

from bench.timing import timed
from meterflow.config import Settings

TARGETS_MS = {"fleet": 150.0, "meter": 100.0}


def measure(settings: Settings, dsn: str, now: datetime, meters: int, runs: int, seed: int = 8,
            ) -> dict[str, tuple[float, float, float, float]]:
    """Per page: (queries p50, queries p95, page p50, page p95) in ms."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.pages.auth import require_analyst
    from api.routes.dashboards import fleet_data, meter_data
    from storage.worklists import LISTS

    rnd = random.Random(seed)
    app = create_app(settings, dsn)
    app.dependency_overrides[require_analyst] = lambda: "bench"  # who is signed in is not what is measured
    params = {"now": now.isoformat()}

    def meter() -> str:
        return f"{rnd.randrange(meters):08d}"

    out: dict[str, tuple[float, float, float, float]] = {}
    with psycopg.connect(dsn) as conn, TestClient(app) as client:

        def page(path: str) -> None:
            response = client.get(path, params=params)
            if response.status_code != 200:
                raise click.ClickException(f"{path}: HTTP {response.status_code} {response.text[:200]}")

        def fleet_queries() -> None:
            fleet_data(conn, now, [], 60, settings.timezone)
            conn.rollback()

        def meter_queries() -> None:
            meter_data(conn, meter(), now, 90, 168)
            conn.rollback()

        out["fleet"] = (*timed(fleet_queries, runs), *timed(lambda: page("/dashboards/fleet"), runs))
        out["meter"] = (*timed(meter_queries, runs),
                        *timed(lambda: page(f"/dashboards/meters/{meter()}"), runs))
        for name in LISTS:  # the work lists: their one query and the page around it
            out[f"list {name}"] = (*timed(_list_query(conn, name, now, settings.timezone), runs),
                                   *timed(_list_page(page, name), runs))
    return out


def _list_query(conn: psycopg.Connection, name: str, now: datetime, tz: str) -> Callable[[], None]:
    from storage import worklists

    def run() -> None:
        worklists.fetch(conn, name, worklists.Query(), now, tz)
        conn.rollback()

    return run


def _list_page(page: Callable[[str], None], name: str) -> Callable[[], None]:
    return lambda: page(f"/dashboards/lists/{name}")


@click.command("pages", epilog="Example: meterflow bench pages --meters 10000 --runs 40")
@click.option("--meters", type=int, default=10_000, show_default=True, help="Fleet size.")
@click.option("--days", type=int, default=400, show_default=True, help="Days of daily rollups per meter.")
@click.option("--districts", type=int, default=20, show_default=True)
@click.option("--gateways", type=int, default=40, show_default=True)
@click.option("--runs", type=int, default=40, show_default=True, help="Requests per page.")
@click.option("--keep", is_flag=True, help="Keep the scratch database (default: drop it at the end).")
@click.pass_obj
def bench_pages(settings: Settings, meters: int, days: int, districts: int, gateways: int, runs: int,
                keep: bool) -> None:
    """Fleet and meter page p50/p95 through the app, against the chart queries behind each page."""
    from bench import charts
    from bench.scratch import scratch_database
    from cli.embedded import database_dsn
    from storage.migrate import upgrade

    name = charts.scratch_name().replace("_charts_", "_pages_")
    with scratch_database(database_dsn(settings), name, keep, click.echo) as dsn:
        click.echo(f"scratch database {name}: {meters:,} meters x {days} days of daily rollups")
        with psycopg.connect(dsn) as conn:
            conn.execute("CREATE TABLE meterflow_meta (key text PRIMARY KEY, value text NOT NULL)")
            conn.execute("INSERT INTO meterflow_meta VALUES ('flavor', 'postgres')")  # plain rollups: COPY
            conn.commit()
            upgrade(conn, settings.timezone)
            now = charts.build(conn, meters, days, 7, districts, gateways, settings.timezone, click.echo)
        results = measure(settings, dsn, now, meters, runs)
    click.echo(f"\n{'page':<24} {'queries p50':>12} {'queries p95':>12} {'page p50':>10} {'page p95':>10} "
               f"{'page/queries p95':>17} {'target p95':>11}")
    for page, (qp50, qp95, pp50, pp95) in results.items():
        target = f"{TARGETS_MS[page]:.0f}" if page in TARGETS_MS else "-"
        click.echo(f"{page:<24} {qp50:>12.1f} {qp95:>12.1f} {pp50:>10.1f} {pp95:>10.1f} "
                   f"{pp95 / max(qp95, 1e-9):>17.2f} {target:>11}")
    click.echo(f"({runs} requests per page; baseline: the chart queries behind the page, same run, same database)")
    click.echo(f"pages: fleet p95 {results['fleet'][3]:.0f} ms, meter p95 {results['meter'][3]:.0f} ms "
               f"({meters} meters)")
