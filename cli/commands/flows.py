"""`meterflow flows serve`: every scheduled flow as a Prefect deployment, in one process."""

from __future__ import annotations

import click

from meterflow.config import Settings


@click.group(epilog="Example: prefect server start &  PREFECT_API_URL=http://127.0.0.1:4200/api meterflow flows serve")
def flows() -> None:
    """Scheduled Prefect flows: leak detection (hourly) and billing (monthly)."""


@flows.command("serve", epilog="Example: meterflow flows serve --notify --no-dry-run")
@click.option("--leaks-cron", default="5 * * * *", show_default=True, help="leak-detection schedule (local time)")
@click.option("--billing-cron", default="0 3 2 * *", show_default=True, help="billing-period schedule (local time)")
@click.option("--notify/--no-notify", default=False, show_default=True, help="send alert notifications")
@click.option("--dry-run/--no-dry-run", default=True, show_default=True, help="notifications only logged")
@click.pass_obj
def serve(settings: Settings, leaks_cron: str, billing_cron: str, notify: bool, dry_run: bool) -> None:
    """Serve the deployments and run them on schedule (blocks; SIGTERM or Ctrl-C stops).

    Schedules need a Prefect API: start `prefect server start` and set PREFECT_API_URL; without it a
    temporary server lives as long as this process. Each leak-detection run refreshes the rollups and the
    dashboard tables first, so charts and alerts stay in step.
    """
    from prefect import serve as prefect_serve

    from cli.embedded import database_dsn
    from pipelines import billing, leaks

    database_dsn(settings)  # flow runs load their own settings: the DSN travels in the environment
    tz = settings.timezone
    prefect_serve(
        leaks.deployment(leaks_cron, timezone=tz, notify=notify, dry_run=dry_run),
        billing.deployment(billing_cron, timezone=tz),
    )
