"""`meterflow alerts list|show|ack|assign|comment|close|reopen|audit` and `meterflow lists NAME`: the
dispatcher's workflow and work lists from a shell (the same storage functions as the console and API)."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from meterflow.config import Settings
from meterflow.spreadsheet import safe_writer

BY_HELP = "Who acts (recorded in the audit); default: $METERFLOW_USER, else the login name."


def _connect(settings: Settings) -> Any:
    """The database of the command, migrated (the registry commands' way)."""
    from cli.commands.registry import migrated_connection as connect_migrated

    return connect_migrated(settings)


def _by(value: str | None) -> str:
    import os

    return value or os.environ.get("METERFLOW_USER") or getpass.getuser()


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="minutes")
    return str(value)


def _act(settings: Settings, alert_id: int, action: str, by: str | None, **kwargs: Any) -> None:
    from storage import alert_workflow as wf

    with _connect(settings) as conn:
        try:
            event = wf.act(conn, alert_id, action, _by(by), **kwargs)
        except (wf.WorkflowError, wf.AlertNotFound) as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"alert {alert_id}: {action} by {event.actor} at {_text(event.at)}")


@click.group(epilog="Example: meterflow alerts list --kind continuous_flow")
def alerts() -> None:
    """The alert workflow: acknowledge, assign, comment, close with a reason, reopen; every action audited."""


@alerts.command("list", epilog="Example: meterflow alerts list --state open --json")
@click.option("--state", type=click.Choice(["open", "resolved", "all"]), default="open", show_default=True)
@click.option("--kind", "kinds", multiple=True, help="Alert kind (repeatable), e.g. continuous_flow, burst.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def list_cmd(settings: Settings, state: str, kinds: tuple[str, ...], as_json: bool) -> None:
    """Alerts with who acknowledged them and who they are assigned to, newest first."""
    from dashboards.labels import kind_label
    from storage import alert_workflow as wf

    with _connect(settings) as conn:
        rows = wf.list_alerts(conn, state=None if state == "all" else state, kinds=list(kinds) or None)
    for a in rows:
        if as_json:
            click.echo(json.dumps({**a, "kind_label": kind_label(a["kind"])}, default=_text))
        else:
            click.echo(f"{a['id']:>6}  {a['meter_id']:<10} {kind_label(a['kind']):<28} {a['state']:<8} "
                       f"since {_text(a['first_seen'])}  ack {_text(a['acknowledged_by'])}  "
                       f"assigned {_text(a['assigned_to'])}")
    click.echo(f"{len(rows)} alerts", err=True)


@alerts.command("show", epilog="Example: meterflow alerts show 42")
@click.argument("alert_id", type=int)
@click.pass_obj
def show(settings: Settings, alert_id: int) -> None:
    """One alert and its history (who did what, when)."""
    from dashboards.labels import kind_label
    from storage import alert_workflow as wf

    with _connect(settings) as conn:
        try:
            alert = wf.get_alert(conn, alert_id)
        except wf.AlertNotFound as exc:
            raise click.ClickException(str(exc)) from exc
        events = wf.events(conn, alert_id=alert_id)
    click.echo(f"alert {alert_id}: {kind_label(alert['kind'])} on meter {alert['meter_id']} ({alert['state']})")
    for key in ("severity", "first_seen", "last_seen", "rate_l_h", "acknowledged_by", "acknowledged_at",
                "assigned_to", "close_reason", "closed_by", "message"):
        click.echo(f"  {key:<16} {_text(alert[key])}")
    for e in events:
        extra = e.details.get("assignee") or e.details.get("reason") or ""
        click.echo(f"  {_text(e.at)}  {e.actor:<12} {e.action:<11} {extra:<18} {e.note}")


def _action(name: str, epilog: str, note_required: bool = False) -> Callable[[Callable[..., None]], click.Command]:
    """One workflow action command: the alert id, who acts (--by) and a note, the same for every action."""

    def wrap(func: Callable[..., None]) -> click.Command:
        func = click.pass_obj(func)
        func = click.option("--note", required=note_required, default=None if note_required else "")(func)
        func = click.option("--by", help=BY_HELP)(func)
        func = click.argument("alert_id", type=int)(func)
        return alerts.command(name, epilog=epilog)(func)

    return wrap


@_action("ack", "Example: meterflow alerts ack 42 --by anna --note 'calling the customer'")
def ack(settings: Settings, alert_id: int, by: str | None, note: str) -> None:
    """Acknowledge an open alert (someone is looking at it)."""
    _act(settings, alert_id, "acknowledge", by, note=note)


@_action("assign", "Example: meterflow alerts assign 42 --to crew-7 --by anna")
@click.option("--to", "assignee", required=True, help="The user the alert is assigned to.")
def assign(settings: Settings, alert_id: int, assignee: str, by: str | None, note: str) -> None:
    """Assign an open alert to a named user."""
    _act(settings, alert_id, "assign", by, note=note, assignee=assignee)


@_action("comment", "Example: meterflow alerts comment 42 --note 'valve replaced' --by bob", note_required=True)
def comment(settings: Settings, alert_id: int, note: str, by: str | None) -> None:
    """Add a comment to an alert's history."""
    _act(settings, alert_id, "comment", by, note=note)


@_action("close", "Example: meterflow alerts close 42 --reason repaired --by bob")
@click.option("--reason", required=True,
              type=click.Choice(["repaired", "customer_informed", "false_alarm", "meter_exchanged"]))
def close(settings: Settings, alert_id: int, reason: str, by: str | None, note: str) -> None:
    """Close an open alert with a reason."""
    _act(settings, alert_id, "close", by, note=note, reason=reason)


@_action("reopen", "Example: meterflow alerts reopen 42 --by anna --note 'leaking again'")
def reopen(settings: Settings, alert_id: int, by: str | None, note: str) -> None:
    """Reopen a closed alert."""
    _act(settings, alert_id, "reopen", by, note=note)


@alerts.command("audit", epilog="Example: meterflow alerts audit --by anna")
@click.option("--by", "actor", default=None, help="Only this user's actions.")
@click.option("--meter", default=None, help="Only this meter's alerts.")
@click.option("--limit", type=int, default=200, show_default=True)
@click.pass_obj
def audit(settings: Settings, actor: str | None, meter: str | None, limit: int) -> None:
    """Who did what on the alerts, oldest first (as CSV)."""

    from storage import alert_workflow as wf

    with _connect(settings) as conn:
        found = wf.events(conn, actor=actor, meter_id=meter, limit=limit)
    out = safe_writer(sys.stdout)  # cells that start like a formula are escaped
    out.writerow(["at", "actor", "action", "alert_id", "meter_id", "detail", "note"])
    for e in found:
        out.writerow([_text(e.at), e.actor, e.action, e.alert_id, e.meter_id,
                      e.details.get("assignee") or e.details.get("reason") or "", e.note])


@click.command("lists", epilog="Example: meterflow lists no-reads --district DMA-02 --days 3 > no-reads.csv")
@click.argument("name", type=click.Choice(["incidents", "no-reads", "zero-reads", "stuck", "verification",
                                           "dead-letters"]))
@click.option("--district", default=None)
@click.option("--street", default=None, help="Street name (prefix, any case).")
@click.option("--gateway", default=None)
@click.option("--days", type=int, default=None, help="N of the list (no-reads: 2, zero-reads: 7, verification: 90).")
@click.option("--sort", default=None, help="Column to sort by (default: the list's own order).")
@click.option("--desc/--asc", "descending", default=None)
@click.option("--now", default=None, help="As-of time (ISO 8601); default now.")
@click.pass_obj
def lists(settings: Settings, name: str, district: str | None, street: str | None, gateway: str | None,
          days: int | None, sort: str | None, descending: bool | None, now: str | None) -> None:
    """A dispatcher's work list as CSV on stdout: open incidents, no-reads, zero-reads, stuck and backflow,
    verification expiring, dead letters by reason."""

    from storage import worklists

    at = datetime.now(UTC)
    if now:
        try:
            at = datetime.fromisoformat(now)
        except ValueError as exc:
            raise click.BadParameter(f"{now!r} is not an ISO 8601 time") from exc
        if at.tzinfo is None:
            from zoneinfo import ZoneInfo

            at = at.replace(tzinfo=ZoneInfo(settings.timezone))
    query = worklists.Query(district=district, street=street, gateway=gateway, sort=sort, descending=descending,
                            days=days)
    with _connect(settings) as conn:
        page = worklists.fetch(conn, name, query, at, settings.timezone, limit=None)
    out = safe_writer(sys.stdout)  # cells that start like a formula are escaped
    out.writerow([c.key for c in page.spec.columns])
    for row in page.rows:
        out.writerow(["" if row[c.key] is None else _text(row[c.key]) for c in page.spec.columns])
    click.echo(f"{page.total} rows ({page.spec.title})", err=True)
