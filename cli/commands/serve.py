"""`meterflow serve`: the web app (billing API, dashboards, customer charts); `serve link` prints a
customer's signed link; `meterflow bench charts` measures the chart queries on a 100,000-meter fleet."""

from __future__ import annotations

import click

from meterflow.config import Settings


@click.group(invoke_without_command=True,
             epilog="Example: METERFLOW_API__TOKENS='[\"s3cret\"]' meterflow serve --port 8000")
@click.option("--host", default=None, help="Interface to listen on (default: settings api.host).")
@click.option("--port", type=int, default=None, help="TCP port (default: settings api.port).")
@click.option("--refresh-minutes", type=float, default=5.0, show_default=True,
              help="Refresh the rollups and dashboard tables this often (the last 6 h of readings), so pages "
                   "show what was committed since; 0 = off (the hourly flow still refreshes).")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, refresh_minutes: float) -> None:
    """Serve the web app: analyst dashboards (/dashboards/fleet), customer charts (/c/...), billing API."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from api.app import create_app
    from storage.db import resolve_dsn

    settings: Settings = ctx.obj
    if not settings.api.tokens:
        click.echo("warning: no api.tokens set (METERFLOW_API__TOKENS); analyst pages will refuse everyone",
                   err=True)
    app = create_app(settings, resolve_dsn(settings))
    if refresh_minutes > 0:
        import threading

        threading.Thread(target=_refresh_loop, args=(resolve_dsn(settings), refresh_minutes * 60.0),
                         name="refresh-derived", daemon=True).start()
    h, p = host or settings.api.host, port or settings.api.port
    click.echo(f"meterflow web app on http://{h}:{p}/dashboards/fleet (customer links: meterflow serve link)")
    # log_config=None: uvicorn logs through our structured handler instead of its own format
    uvicorn.run(app, host=h, port=p, log_level=settings.log_level.lower(), access_log=False, log_config=None)


def _refresh_loop(dsn: str, every_s: float) -> None:
    """serve's background refresh: at start, then every `every_s` seconds; a failed run is logged and retried."""
    import time

    import psycopg

    from meterflow.logs import ctx, get_logger
    from storage.refresh import refresh_recent

    log = get_logger("meterflow.serve")
    while True:
        started = time.monotonic()
        try:
            with psycopg.connect(dsn) as conn:
                start, end = refresh_recent(conn)
            log.info("dashboards refreshed", extra=ctx(start=start.isoformat(), end=end.isoformat(),
                                                       seconds=round(time.monotonic() - started, 2)))
        except Exception as exc:  # the database may be restarting: try again next round
            log.warning("dashboard refresh failed", extra=ctx(reason=str(exc).splitlines()[0] if str(exc) else ""))
        time.sleep(max(every_s - (time.monotonic() - started), 1.0))


@serve.command("link", epilog="Example: meterflow serve link --customer C-000123 --now 2026-03-01")
@click.option("--customer", "customer_ref", required=True, help="customer_ref of the customer.")
@click.option("--base-url", default=None, help="Public address of the app (default: http://api.host:api.port).")
@click.option("--now", default=None, help="Append ?now= (as-of time for simulated data).")
@click.pass_obj
def link(settings: Settings, customer_ref: str, base_url: str | None, now: str | None) -> None:
    """Print the signed link that shows one customer their own meters (and nothing else)."""
    from urllib.parse import urlencode

    from api.pages.auth import customer_link

    url = customer_link(settings, customer_ref, base_url or f"http://{settings.api.host}:{settings.api.port}")
    click.echo(url + (f"&{urlencode({'now': now})}" if now else ""))


@click.command("charts", epilog="Example: meterflow bench charts --meters 100000 --days 365 --runs 50")
@click.option("--meters", type=int, default=100_000, show_default=True, help="Fleet size.")
@click.option("--days", type=int, default=365, show_default=True, help="Days of daily rollups per meter.")
@click.option("--hourly-days", type=int, default=7, show_default=True, help="Days of hourly rollups per meter.")
@click.option("--districts", type=int, default=60, show_default=True, help="District metered areas.")
@click.option("--gateways", type=int, default=400, show_default=True)
@click.option("--runs", type=int, default=50, show_default=True, help="Runs of each query.")
@click.option("--keep", is_flag=True, help="Keep the scratch database (default: drop it at the end).")
@click.pass_obj
def bench_charts(settings: Settings, meters: int, days: int, hourly_days: int, districts: int, gateways: int,
                 runs: int, keep: bool) -> None:
    """Chart queries p50/p95 on a scratch fleet (binary COPY into the rollups), against an in-run baseline."""
    import psycopg

    from dashboards import bench
    from storage.db import resolve_dsn, with_database
    from storage.migrate import upgrade

    server = resolve_dsn(settings)
    name = bench.scratch_name()
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    click.echo(f"scratch database {name}: {meters:,} meters x {days} days of daily rollups")
    try:
        with psycopg.connect(with_database(server, name)) as conn:
            # the rollups must be plain tables to COPY into them
            conn.execute("CREATE TABLE meterflow_meta (key text PRIMARY KEY, value text NOT NULL)")
            conn.execute("INSERT INTO meterflow_meta VALUES ('flavor', 'postgres')")
            conn.commit()
            upgrade(conn, settings.timezone)
            now = bench.build(conn, meters, days, hourly_days, districts, gateways, settings.timezone, click.echo)
            base, results = bench.run_queries(conn, now, meters, districts, runs, click.echo)
    finally:
        if not keep:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            click.echo(f"dropped {name}")
    ref = max(b.p95_ms for b in base)
    click.echo(f"\n{'query':<40} {'p50 ms':>8} {'p95 ms':>8} {'p95/baseline':>13}")
    for r in base:
        click.echo(f"{'baseline: ' + r.name:<40} {r.p50_ms:>8.2f} {r.p95_ms:>8.2f} {r.p95_ms / ref:>13.1f}")
    for r in results:
        click.echo(f"{r.name:<40} {r.p50_ms:>8.2f} {r.p95_ms:>8.2f} {r.p95_ms / ref:>13.1f}")
    worst = max(results, key=lambda r: r.p95_ms)
    click.echo(f"({runs} runs per query; baseline p95 {ref:.2f} ms; target p95 < 100 ms per chart query)")
    click.echo(f"charts: p95 {worst.p95_ms:.1f} ms (worst query {worst.name})")
