"""The alert workflow and the work lists as JSON: what the console's forms do, for other systems (a
work-order tool, a dispatcher's phone). The acting user is the authenticated name (require_analyst)."""

from __future__ import annotations

from typing import Any, Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field

from api.deps import get_db
from api.pages.auth import require_analyst
from api.routes.console import AsOf, as_of, list_query, load_list
from dashboards.labels import kind_label
from storage import alert_workflow as wf
from storage import worklists

router = APIRouter(prefix="/api/v1", tags=["alerts"])


class Action(BaseModel):
    note: str = Field("", description="free text stored with the action")
    assignee: str | None = Field(None, description="assign: the user the alert is assigned to")
    reason: Literal["repaired", "customer_informed", "false_alarm", "meter_exchanged"] | None = Field(
        None, description="close: why")


def _alert_json(conn: psycopg.Connection, alert_id: int) -> dict[str, Any]:
    alert = wf.get_alert(conn, alert_id)
    return {**alert, "kind_label": kind_label(alert["kind"]),
            "events": [e.as_dict() for e in wf.events(conn, alert_id=alert_id)]}


@router.get("/alerts/{alert_id}", summary="One alert with its workflow events")
def get_alert(alert_id: int, _: str = Depends(require_analyst),
              conn: psycopg.Connection = Depends(get_db)) -> dict[str, Any]:
    try:
        return _alert_json(conn, alert_id)
    except wf.AlertNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


@router.post("/alerts/{alert_id}/{action}", summary="Acknowledge, assign, comment, close or reopen an alert")
def post_action(alert_id: int, action: Literal["acknowledge", "assign", "comment", "close", "reopen"],
                body: Action, user: str = Depends(require_analyst),
                conn: psycopg.Connection = Depends(get_db)) -> dict[str, Any]:
    """Applies the action as the authenticated user; 409 when it does not apply (e.g. closing a closed alert)."""
    try:
        wf.act(conn, alert_id, action, user, note=body.note, assignee=body.assignee, reason=body.reason)
        return _alert_json(conn, alert_id)
    except wf.AlertNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except wf.WorkflowError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.get("/audit", summary="Workflow events (who did what, when), newest last")
def audit(actor: str | None = None, meter: str | None = None, alert: int | None = None,
          limit: int = Query(500, ge=1, le=10000), _: str = Depends(require_analyst),
          conn: psycopg.Connection = Depends(get_db)) -> list[dict[str, Any]]:
    return [e.as_dict() for e in wf.events(conn, alert_id=alert, meter_id=meter, actor=actor, limit=limit)]


@router.get("/lists/{name}", summary="A work list (JSON or CSV), filtered, sorted and paged", response_model=None)
def get_list(
    name: str, district: str | None = None, street: str | None = None, gateway: str | None = None,
    sort: str | None = None, order: str | None = Query(None, pattern="^(asc|desc)$"),
    page: int = Query(1, ge=1), per_page: int = Query(50, ge=1, le=1000), days: int | None = Query(None, ge=1),
    format: str = Query("json", pattern="^(json|csv)$"), when: AsOf = Depends(as_of),
    _: str = Depends(require_analyst), conn: psycopg.Connection = Depends(get_db),
) -> Any:
    query = list_query(district, street, gateway, sort, order, page, per_page, days)
    result = load_list(conn, name, query, when, f"{name}.csv" if format == "csv" else None)
    if not isinstance(result, worklists.Page):
        return result
    return {"list": name, "total": result.total, "page": page, "pages": result.pages, "sort": result.sort,
            "order": "desc" if result.descending else "asc", "days": result.days, "rows": result.rows}
