"""The dispatcher's console: work lists (filter, sort, page, CSV), search, an alert's page with its workflow
(acknowledge, assign, comment, close with a reason, reopen), the audit of who did what, and the district
water balance. The same lists and actions are in the JSON API (api.routes.alerts)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import psycopg
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import get_db
from api.pages import i18n
from api.pages.auth import require_analyst
from api.routes.dashboards import fig_json, page_lang, parse_now, render
from dashboards import figures
from dashboards.labels import ACTION_LABELS, Labels, kind_label
from meterflow.config import Settings
from meterflow.spreadsheet import safe_writer
from storage import alert_workflow as wf
from storage import chart_queries as q
from storage import worklists

router = APIRouter(tags=["console"])


def list_query(district: str | None, street: str | None, gateway: str | None, sort: str | None,
               order: str | None, page: int, per_page: int, days: int | None) -> worklists.Query:
    return worklists.Query(district=district or None, street=street or None, gateway=gateway or None,
                           sort=sort or None, descending=None if order not in ("asc", "desc") else order == "desc",
                           page=page, per_page=per_page, days=days)


@dataclass(frozen=True)
class AsOf:
    """The `?now=` of a page: the instant (UTC) and the raw parameter (kept in links)."""

    at: datetime
    raw: str | None
    tz: str


async def as_of(request: Request,
                now: str | None = Query(None, description="as-of time (ISO); default the current time")) -> AsOf:
    """No I/O: async, so FastAPI runs it on the event loop instead of handing it to the thread pool."""
    settings: Settings = request.app.state.settings
    return AsOf(parse_now(now, settings.timezone), now, settings.timezone)


def load_list(conn: psycopg.Connection, name: str, query: worklists.Query, when: AsOf,
              csv_name: str | None) -> worklists.Page | Response:
    """One page of a list, or (csv_name given) every row as a CSV download; 404 for an unknown list."""
    if name not in worklists.LISTS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no list {name!r}; lists: {', '.join(worklists.LISTS)}")
    if csv_name is not None:
        return csv_response(worklists.fetch(conn, name, query, when.at, when.tz, limit=None), csv_name)
    return worklists.fetch(conn, name, query, when.at, when.tz)


def csv_response(page: worklists.Page, filename: str) -> Response:
    """The list as CSV: the page's columns with their labels as the header, times in ISO 8601 with offset."""
    out = io.StringIO()
    writer = safe_writer(out)  # cells that start like a formula are escaped
    cols = page.spec.columns
    writer.writerow([c.key for c in cols])
    for row in page.rows:
        writer.writerow([_csv_value(row.get(c.key), c.kind) for c in cols])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _csv_value(value: Any, kind: str) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if kind in ("num", "m3") and isinstance(value, float):
        return f"{value:.3f}"
    return value


def page_context(conn: psycopg.Connection, when: AsOf) -> dict[str, Any]:
    """What every console page shows in its header: the as-of time, data as of, the search box, the lists."""
    return {"at": when.at, "now_raw": when.raw, "now_q": urlencode({"now": when.raw}) if when.raw else "",
            "data_as_of": q.data_as_of(conn, when.at), "analyst": True, "kind_label": kind_label, "charts": {},
            "lists": worklists.LISTS, "action_labels": ACTION_LABELS}


@router.get("/dashboards/lists/{name}", response_class=HTMLResponse, summary="A dispatcher's work list")
def list_page(
    name: str,
    request: Request,
    district: str | None = Query(None), street: str | None = Query(None), gateway: str | None = Query(None),
    sort: str | None = Query(None), order: str | None = Query(None, pattern="^(asc|desc)$"),
    page: int = Query(1, ge=1), per_page: int = Query(50, ge=1, le=1000),
    days: int | None = Query(None, ge=1, le=3650),
    format: str = Query("html", pattern="^(html|csv)$"),
    when: AsOf = Depends(as_of),
    user: str = Depends(require_analyst),
    conn: psycopg.Connection = Depends(get_db),
) -> Response:
    query = list_query(district, street, gateway, sort, order, page, per_page, days)
    stamp = f"{when.at.astimezone(ZoneInfo(when.tz)):%Y%m%d-%H%M}"
    result = load_list(conn, name, query, when, f"{name}-{stamp}.csv" if format == "csv" else None)
    if not isinstance(result, worklists.Page):
        return result
    params = {k: v for k, v in {"now": when.raw, "district": district, "street": street, "gateway": gateway,
                                 "days": days, "per_page": per_page if per_page != 50 else None}.items() if v}
    order_now = "desc" if result.descending else "asc"

    def link(**changes: Any) -> str:
        merged = {**params, "sort": result.sort, "order": order_now, "page": page, **changes}
        return f"/dashboards/lists/{name}?" + urlencode({k: v for k, v in merged.items() if v not in (None, "")})

    return render(request, "list.html", {
        **page_context(conn, when),
        "title": page_lang(request).gettext(result.spec.title),
        "user": user,
        "result": result,
        "options": worklists.filter_options(conn),
        "filters": {"district": district or "", "street": street or "", "gateway": gateway or ""},
        "link": link,
        "csv_link": f"/dashboards/lists/{name}?" + urlencode({**params, "sort": result.sort, "order": order_now,
                                                              "format": "csv"}),
    })


@router.get("/dashboards/search", response_class=HTMLResponse, summary="Find a meter")
def search_page(
    request: Request,
    q_: str = Query("", alias="q", description="meter number, customer, premise or address"),
    when: AsOf = Depends(as_of),
    user: str = Depends(require_analyst),
    conn: psycopg.Connection = Depends(get_db),
) -> Response:
    found = worklists.search(conn, q_)
    if len(found) == 1:
        target = f"/dashboards/meters/{found[0]['meter_id']}" + (f"?{urlencode({'now': when.raw})}" if when.raw else "")
        return RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    return render(request, "search.html", {**page_context(conn, when), "title": page_lang(request).gettext("Search"),
                                           "user": user, "query": q_, "found": found})


@router.get("/dashboards/alerts/{alert_id}", response_class=HTMLResponse, summary="An alert and its workflow")
def alert_page(
    request: Request,
    alert_id: int,
    error: str | None = Query(None),
    when: AsOf = Depends(as_of),
    user: str = Depends(require_analyst),
    conn: psycopg.Connection = Depends(get_db),
) -> HTMLResponse:
    try:
        alert = wf.get_alert(conn, alert_id)
    except wf.AlertNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return render(request, "alert.html", {
        **page_context(conn, when), "user": user, "alert": alert,
        "title": page_lang(request).gettext("Alert %(alert)s") % {"alert": alert_id},
        "info": q.meter_info(conn, alert["meter_id"]) or {}, "reasons": wf.CLOSE_REASONS, "error": error,
        "events": [e.as_dict() for e in wf.events(conn, alert_id=alert_id)],
    })


@router.post("/dashboards/alerts/{alert_id}/{action}", include_in_schema=False)
def alert_action_form(
    request: Request,
    alert_id: int,
    action: str,
    note: str = Form(""),
    assignee: str = Form(""),
    reason: str = Form(""),
    now: str = Form(""),
    lang: str = Form(""),
    user: str = Depends(require_analyst),
    conn: psycopg.Connection = Depends(get_db),
) -> Response:
    """The alert page's forms: apply the action as the signed-in user and go back to the alert; a refusal is
    shown there in the page's language (the form's `lang`, else settings api.locale)."""
    extra = {"now": now} if now else {}
    if lang in i18n.LOCALES:
        extra["lang"] = lang
    try:
        wf.act(conn, alert_id, action, user, note=note, assignee=assignee or None, reason=reason or None)
    except wf.AlertNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except wf.WorkflowError as exc:
        settings: Settings = request.app.state.settings
        extra["error"] = workflow_message(exc, i18n.for_locale(lang or settings.api.locale, settings.timezone))
    return RedirectResponse(f"/dashboards/alerts/{alert_id}" + (f"?{urlencode(extra)}" if extra else ""),
                            status_code=status.HTTP_303_SEE_OTHER)


def workflow_message(exc: wf.WorkflowError, lang: i18n.Lang) -> str:
    """A workflow refusal in the page's language: its template translated, a kind or reason by its label."""
    labels = Labels(lang.gettext)
    values = {k: labels.kind(v) if k == "kind" else v for k, v in exc.values.items()}
    if "reasons" in values:
        values["reasons"] = ", ".join(labels.reason(r) for r in wf.CLOSE_REASONS)
    return lang.gettext(exc.message) % values if values else lang.gettext(exc.message)


@router.get("/dashboards/audit", response_class=HTMLResponse, summary="Who did what on the alerts")
def audit_page(
    request: Request,
    actor: str | None = Query(None),
    meter: str | None = Query(None),
    when: AsOf = Depends(as_of),
    user: str = Depends(require_analyst),
    conn: psycopg.Connection = Depends(get_db),
) -> HTMLResponse:
    found = wf.events(conn, actor=actor or None, meter_id=meter or None, limit=500)
    return render(request, "audit.html", {**page_context(conn, when), "title": page_lang(request).gettext("Audit"),
                                          "user": user, "events": list(reversed(found)), "actor": actor or "",
                                          "meter": meter or ""})


@router.get("/dashboards/balance", response_class=HTMLResponse, summary="District water balance")
def balance_page(
    request: Request,
    days: int = Query(30, ge=2, le=730, description="days of history"),
    when: AsOf = Depends(as_of),
    user: str = Depends(require_analyst),
    conn: psycopg.Connection = Depends(get_db),
) -> HTMLResponse:
    lang = page_lang(request)
    today = when.at.astimezone(ZoneInfo(when.tz)).date()
    balance = q.water_balance(conn, today - timedelta(days=days), today)
    ranking = q.balance_ranking(balance)
    charts = {"balance-ranking": figures.balance_ranking_figure(ranking, lang)}
    for i, district in enumerate(ranking["district"].to_list()):
        charts[f"balance-{i}"] = figures.balance_figure(balance.filter(balance["district"] == district), district,
                                                        lang)
    return render(request, "balance.html", {
        **page_context(conn, when), "title": lang.gettext("District water balance"), "user": user, "days": days,
        "ranking": ranking.to_dicts(), "charts": {k: fig_json(v) for k, v in charts.items()},
    })
