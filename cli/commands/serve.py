"""`meterflow serve`: the web app (billing API, dashboards, customer charts); `serve link` prints a
customer's signed link."""

from __future__ import annotations

from typing import Any

import click

from meterflow.config import Settings


@click.group(invoke_without_command=True,
             epilog="Example: meterflow tokens add anna --scope analyst && meterflow serve --port 8000")
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
    from cli.embedded import database_dsn
    from meterflow.secrets import SecretError

    settings: Settings = ctx.obj
    if settings.api.tokens:
        click.echo(f"note: {len(settings.api.tokens)} bootstrap token(s) from api.tokens have every scope; prefer "
                   "named tokens (meterflow tokens add NAME --scope ...)", err=True)
    dsn = database_dsn(settings)
    try:
        app = create_app(settings, dsn)
    except SecretError as exc:
        raise click.ClickException(str(exc)) from exc
    if refresh_minutes > 0:
        import threading

        threading.Thread(target=_refresh_loop, args=(dsn, refresh_minutes * 60.0), name="refresh-derived",
                         daemon=True).start()
    h, p = host or settings.api.host, port or settings.api.port
    click.echo(f"meterflow web app on http://{h}:{p}/dashboards/fleet (customer links: meterflow serve link)")
    # log_config=None: uvicorn logs through our structured handler instead of its own format
    uvicorn.run(app, host=h, port=p, log_level=settings.log_level.lower(), access_log=False, log_config=None)


def _refresh_loop(dsn: str, every_s: float, stop: Any = None) -> None:
    """serve's background refresh: at start, then every `every_s` seconds until `stop` (a threading.Event) is
    set; a failed run is logged and retried."""
    import threading
    import time

    import psycopg

    from meterflow.logs import ctx, get_logger
    from storage.refresh import refresh_recent

    log = get_logger("meterflow.serve")
    stop = stop or threading.Event()
    while not stop.is_set():
        started = time.monotonic()
        try:
            with psycopg.connect(dsn) as conn:
                start, end = refresh_recent(conn)
            log.info("dashboards refreshed", extra=ctx(start=start.isoformat(), end=end.isoformat(),
                                                       seconds=round(time.monotonic() - started, 2)))
        except Exception as exc:  # the database may be restarting: try again next round
            log.warning("dashboard refresh failed", extra=ctx(reason=str(exc).splitlines()[0] if str(exc) else ""))
        stop.wait(max(every_s - (time.monotonic() - started), 0.05))


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
