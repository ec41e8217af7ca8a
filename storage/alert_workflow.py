"""The dispatcher's workflow on an alert (incident): acknowledge, assign, comment, close with a reason,
reopen. Each action changes the alert row and appends one alert_events row (who, when, what) in the same
transaction, so the audit never disagrees with the alert. The actor is a name from the caller (the web
app's authenticated user, or the CLI's --by); this module does not decide who may act.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg

from meterflow.messages import N_

# reason -> label; the dispatcher's reasons for closing (the detector records its own, e.g. flow_stopped)
CLOSE_REASONS: dict[str, str] = {
    "repaired": N_("repaired"),
    "customer_informed": N_("customer informed"),
    "false_alarm": N_("false alarm"),
    "meter_exchanged": N_("meter exchanged"),
}
ACTIONS = ("acknowledge", "assign", "comment", "close", "reopen")
EVENT_COLUMNS = ("id", "alert_id", "meter_id", "at", "actor", "action", "note", "details")
ALERT_VIEW = ("id", "meter_id", "kind", "severity", "state", "first_seen", "last_seen", "opened_at", "updated_at",
              "resolved_at", "rate_l_h", "volume_m3", "message", "close_reason", "closed_by", "acknowledged_at",
              "acknowledged_by", "assigned_to", "assigned_at")


class WorkflowError(ValueError):
    """An action that does not apply to the alert in its current state (HTTP 409 / exit status 1). `message` is
    an English template with `%(name)s` fields filled from `values`, so a page can say it in its language."""

    def __init__(self, message: str, **values: Any) -> None:
        self.message, self.values = message, values
        super().__init__(message % values if values else message)


class AlertNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Event:
    id: int
    alert_id: int
    meter_id: str
    at: Any
    actor: str
    action: str
    note: str
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in EVENT_COLUMNS}


def get_alert(conn: psycopg.Connection, alert_id: int) -> dict[str, Any]:
    row = conn.execute(f"SELECT {', '.join(ALERT_VIEW)} FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    if row is None:
        raise AlertNotFound(f"alert {alert_id} not found")
    return dict(zip(ALERT_VIEW, row, strict=True))


def list_alerts(conn: psycopg.Connection, state: str | None = "open", kinds: list[str] | None = None,
                limit: int = 1000) -> list[dict[str, Any]]:
    """Alerts with their workflow columns, newest first; state open | resolved | None (all)."""
    rows = conn.execute(
        f"""SELECT {', '.join(ALERT_VIEW)} FROM alerts
            WHERE (%(state)s::text IS NULL OR state = %(state)s)
              AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s))
            ORDER BY first_seen DESC, id LIMIT %(limit)s""",
        {"state": state, "kinds": kinds or None, "limit": limit}).fetchall()
    return [dict(zip(ALERT_VIEW, r, strict=True)) for r in rows]


def events(conn: psycopg.Connection, alert_id: int | None = None, meter_id: str | None = None,
           actor: str | None = None, limit: int = 500) -> list[Event]:
    """Workflow events, oldest first, of one alert, one meter or one actor (or all)."""
    where, args = ["true"], []
    for column, value in (("alert_id", alert_id), ("meter_id", meter_id), ("actor", actor)):
        if value is not None:
            where.append(f"{column} = %s")
            args.append(value)
    rows = conn.execute(
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM (SELECT * FROM alert_events WHERE {' AND '.join(where)}"
        " ORDER BY at DESC, id DESC LIMIT %s) e ORDER BY at, id", [*args, limit]).fetchall()
    return [Event(*r) for r in rows]


def _lock(conn: psycopg.Connection, alert_id: int) -> dict[str, Any]:
    row = conn.execute(f"SELECT {', '.join(ALERT_VIEW)} FROM alerts WHERE id = %s FOR UPDATE", (alert_id,)).fetchone()
    if row is None:
        raise AlertNotFound(f"alert {alert_id} not found")
    return dict(zip(ALERT_VIEW, row, strict=True))


def _record(conn: psycopg.Connection, alert: dict[str, Any], actor: str, action: str, note: str,
            details: dict[str, Any]) -> Event:
    row = conn.execute(
        f"""INSERT INTO alert_events (alert_id, meter_id, actor, action, note, details)
            VALUES (%s, %s, %s, %s, %s, %s::jsonb) RETURNING {', '.join(EVENT_COLUMNS)}""",
        (alert["id"], alert["meter_id"], actor, action, note, json.dumps(details)),
    ).fetchone()
    assert row is not None
    return Event(*row)


def _actor(actor: str) -> str:
    name = (actor or "").strip()
    if not name:
        raise WorkflowError(N_("an action needs the name of who does it"))
    return name


def act(conn: psycopg.Connection, alert_id: int, action: str, actor: str, note: str = "",
        assignee: str | None = None, reason: str | None = None) -> Event:
    """Apply one workflow action and record it; commits. Raises WorkflowError when it does not apply."""
    actor = _actor(actor)
    note = (note or "").strip()
    if action not in ACTIONS:
        raise WorkflowError(N_("unknown action %(action)r (one of %(actions)s)"), action=action,
                            actions=", ".join(ACTIONS))
    with conn.transaction():
        alert = _lock(conn, alert_id)
        is_open = alert["state"] == "open"
        details: dict[str, Any] = {}
        if action == "acknowledge":
            if not is_open:
                raise WorkflowError(N_("alert %(alert)s is closed; reopen it first"), alert=alert_id)
            conn.execute("UPDATE alerts SET acknowledged_at = now(), acknowledged_by = %s, updated_at = now()"
                         " WHERE id = %s", (actor, alert_id))
        elif action == "assign":
            who = (assignee or "").strip()
            if not who:
                raise WorkflowError(N_("assign needs the name of the assignee"))
            if not is_open:
                raise WorkflowError(N_("alert %(alert)s is closed; reopen it first"), alert=alert_id)
            details = {"assignee": who, "previous": alert["assigned_to"]}
            conn.execute("UPDATE alerts SET assigned_to = %s, assigned_at = now(), updated_at = now()"
                         " WHERE id = %s", (who, alert_id))
        elif action == "comment":
            if not note:
                raise WorkflowError(N_("a comment needs text"))
        elif action == "close":
            if reason not in CLOSE_REASONS:
                raise WorkflowError(N_("close needs a reason: one of %(reasons)s"), reasons=", ".join(CLOSE_REASONS))
            if not is_open:
                raise WorkflowError(N_("alert %(alert)s is already closed"), alert=alert_id)
            details = {"reason": reason}
            conn.execute("UPDATE alerts SET state = 'resolved', resolved_at = now(), close_reason = %s,"
                         " closed_by = %s, updated_at = now() WHERE id = %s", (reason, actor, alert_id))
        elif action == "reopen":
            if is_open:
                raise WorkflowError(N_("alert %(alert)s is open"), alert=alert_id)
            other = conn.execute("SELECT id FROM alerts WHERE meter_id = %s AND kind = %s AND state = 'open'",
                                 (alert["meter_id"], alert["kind"])).fetchone()
            if other is not None:
                raise WorkflowError(N_("meter %(meter)s has another open %(kind)s alert (%(other)s); work on that one"),
                                    meter=alert["meter_id"], kind=alert["kind"], other=other[0])
            details = {"previous_reason": alert["close_reason"], "previous_closed_by": alert["closed_by"]}
            conn.execute("UPDATE alerts SET state = 'open', resolved_at = NULL, close_reason = NULL,"
                         " closed_by = NULL, updated_at = now() WHERE id = %s", (alert_id,))
        event = _record(conn, alert, actor, action, note, details)
    conn.commit()
    return event
