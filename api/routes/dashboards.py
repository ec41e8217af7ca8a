"""Dashboards: the analyst fleet and meter pages and login; `render`, the page renderer every page uses
(customer pages: api/routes/customer.py; static files: api/routes/static.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import orjson
import plotly.graph_objects as go
import polars as pl
import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.deps import get_db
from api.pages import i18n
from api.pages.auth import require_analyst
from dashboards import figures
from dashboards.labels import ACTION_LABELS, Labels, kind_label
from meterflow.config import Settings
from storage import alert_workflow as wf
from storage import alerts as incidents_store
from storage import chart_queries as q
from storage.worklists import LISTS

router = APIRouter(tags=["dashboards"])

API_DIR = Path(__file__).resolve().parents[1]
templates = Jinja2Templates(directory=str(API_DIR / "templates"))
i18n.install(templates.env)


# --------------------------------------------------------------------------------------------- helpers

AS_OF_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
AS_OF_AHEAD = timedelta(days=366)


def parse_now(value: str | None, tz: str) -> datetime:
    """`?now=` as ISO date or date-time (local time when naive); default the current time."""
    if not value:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T").replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=ZoneInfo(tz))
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "now= is not an ISO date") from exc
    if not AS_OF_EARLIEST <= parsed <= datetime.now(UTC) + AS_OF_AHEAD:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"now= must lie between {AS_OF_EARLIEST.date()} and a year from today")
    return parsed


def fig_json(fig: go.Figure | dict[str, Any]) -> str:
    """Figure JSON safe to embed in a <script type="application/json"> element (a dict figure: plain JSON)."""
    if isinstance(fig, dict):
        text = orjson.dumps(fig, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    else:
        text = fig.to_json(validate=False)
    return text.replace("</", "<\\/")


def _fmt_age(now: datetime, then: datetime | None, lang: i18n.Lang = i18n.Lang("en", "UTC")) -> str:
    """How long ago, in the page's language: "12.0 h ago", "12,0 h temu"."""
    if then is None:
        return lang.gettext("never")
    seconds = (now - then).total_seconds()
    if seconds < 0:
        return lang.gettext("in the future")
    if seconds < 3600:
        return lang.gettext("%(n)s min ago") % {"n": lang.num(seconds / 60)}
    if seconds < 172800:
        return lang.gettext("%(n)s h ago") % {"n": lang.num(seconds / 3600, 1)}
    return lang.gettext("%(n)s days ago") % {"n": lang.num(seconds / 86400)}


def _local(value: Any, tz: str, fmt: str = "%Y-%m-%d %H:%M", lang: i18n.Lang | None = None) -> str:
    """ISO date (and time) in English, the locale's day / date-and-time format otherwise (01.03.2026 12:00)."""
    if value is None:
        return "—"
    if lang is not None and lang.code != "en" and isinstance(value, date) and fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%d"):
        return lang.when(value) if fmt.endswith("%M") and isinstance(value, datetime) else lang.day(value)
    if isinstance(value, datetime):
        return value.astimezone(ZoneInfo(tz)).strftime(fmt)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def page_lang(request: Request) -> i18n.Lang:
    """The language of this request's page (`?lang=`, else settings api.locale): routes word their titles,
    charts and messages with it before `render` makes it current for the template."""
    settings: Settings = request.app.state.settings
    return i18n.for_locale(i18n.request_locale(request, settings.api.locale), settings.timezone)


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """Every page in the request's language (`?lang=`, else settings api.locale): `<html lang>`, `_()`, the
    labels of codes (kinds, severities, states, reasons, actions) and the number/date filters follow."""
    settings: Settings = request.app.state.settings
    lang = i18n.activate(page_lang(request))
    labels = Labels(lang.gettext)
    context.setdefault("lang", lang)
    context.setdefault("tz", settings.timezone)
    context["labels"] = labels
    if "kind_label" in context:  # the analyst pages' kinds, in the page's language
        context["kind_label"] = labels.kind
    # a `?lang=` asked for explicitly rides along in the pages' forms (the configured locale needs no help)
    context["lang_asked"] = lang.code if request.query_params.get("lang") == lang.code else ""
    context["local"] = lambda v, fmt="%Y-%m-%d %H:%M": _local(v, settings.timezone, fmt, lang)
    context["fmt_age"] = lambda now, then: _fmt_age(now, then, lang)
    response: HTMLResponse = templates.TemplateResponse(request, name, context, status_code=status_code)
    return response


def _now_param(now: datetime, raw: str | None) -> str:
    return urlencode({"now": raw}) if raw else ""


def analyst_context(at: datetime, now_raw: str | None, user: str, data_as_of: dict[str, Any]) -> dict[str, Any]:
    """What every analyst page's header shows: the as-of time, data as of, who is signed in, the search box,
    the console's lists; and the labels its tables use."""
    return {"at": at, "now_raw": now_raw, "now_q": _now_param(at, now_raw), "data_as_of": data_as_of,
            "analyst": True, "user": user, "lists": LISTS, "kind_label": kind_label, "action_labels": ACTION_LABELS}


# --------------------------------------------------------------------------------------------- home


@router.get("/dashboards", include_in_schema=False)
def dashboards_home() -> Response:
    return RedirectResponse("/dashboards/fleet", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


# --------------------------------------------------------------------------------------------- analyst


@router.get("/dashboards/fleet", response_class=HTMLResponse, summary="Analyst fleet page")
def fleet_page(
    request: Request,
    now: str | None = Query(None, description="as-of time (ISO); default the current time"),
    district: list[str] = Query(default_factory=list, description="districts to chart (default: the largest)"),
    days: int = Query(60, ge=7, le=730, description="days of district history"),
    user: str = Depends(require_analyst),
    conn: psycopg.Connection = Depends(get_db),
) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    lang = page_lang(request)
    at = parse_now(now, settings.timezone)
    data = fleet_data(conn, at, district, days, settings.timezone)
    by_district, by_gateway, kinds, dead = data["by_district"], data["by_gateway"], data["kinds"], data["dead"]
    dd, fresh, due_total = data["district_daily"], data["fresh"], data["due_total"]
    incident_totals = incidents_store.incident_totals(data["incidents"])
    meters = int(by_district["meters"].sum() or 0)
    heard = int(by_district["heard"].sum() or 0)
    charts = {
        "coverage-district": figures.coverage_figure(by_district, "district", lang),
        "coverage-gateway": figures.coverage_figure(by_gateway, "gateway", lang),
        "freshness": figures.freshness_figure(data["ages"], lang),
        "alerts-kind": figures.alerts_by_kind_figure(kinds, Labels(lang.gettext).kind, lang),
        "district-consumption": figures.district_consumption_figure(dd, lang),
        "night-flow": figures.night_flow_figure(dd, lang),
        "verification": figures.verification_figure(data["due_weeks"], lang),
        "dead-letters": figures.dead_letters_figure(dead, lang),
    }
    return render(request, "fleet.html", {
        **analyst_context(at, now, user, fresh),
        "title": lang.gettext("Fleet overview"),
        "now_q": _now_param(at, now),
        "charts": {k: fig_json(v) for k, v in charts.items()},
        "kpi": {
            "meters": meters,
            "heard_pct": (100.0 * heard / meters) if meters else 0.0,
            "open_alerts": int(kinds["alerts"].sum() or 0) if not kinds.is_empty() else 0,
            "volume_lost": incident_totals["volume_lost_m3"],  # each incident once (open or closed, 30 days)
            "dead_letters": int(dead["frames"].sum() or 0) if not dead.is_empty() else 0,
            "due": due_total,
        },
        "fresh": fresh,
        "kinds": kinds.to_dicts(),
        "alerts": data["alerts"].to_dicts(),
        "incidents": data["incidents"],
        "incident_totals": incident_totals,
        "gateways": by_gateway.sort("share").to_dicts(),
        "due": data["due"].to_dicts(),
        "due_total": due_total,
        "all_districts": data["all_districts"],
        "chosen": data["chosen"],
        "days": days,
        "balance": data["balance"].head(5).to_dicts(),
    })


def fleet_data(conn: psycopg.Connection, at: datetime, district: list[str], days: int, tz: str) -> dict[str, Any]:
    """Every query behind the fleet page (what `meterflow bench pages` takes as its baseline)."""
    today = at.astimezone(ZoneInfo(tz)).date()
    start, end = today - timedelta(days=days), today  # the current day is still incomplete
    ages, fresh = q.freshness(conn, at)
    all_districts = q.districts(conn)
    chosen = [d for d in district if d in all_districts] or q.top_districts(conn, start, end, 6)
    due, due_total = q.verification_due(conn, at, 90, limit=100)
    return {
        "by_district": q.coverage_by_district(conn, at), "by_gateway": q.coverage_by_gateway(conn, at),
        "ages": ages, "fresh": fresh, "kinds": q.open_alerts_by_kind(conn, at),
        "alerts": q.open_alerts(conn, at, limit=50), "incidents": incidents_store.fleet_incidents(conn, at),
        "all_districts": all_districts, "chosen": chosen,
        "district_daily": q.district_daily(conn, chosen, start, end), "due": due, "due_total": due_total,
        "due_weeks": q.verification_by_week(conn, at, 90), "dead": q.dead_letters_by_reason(conn, at),
        "balance": q.balance_ranking(q.water_balance(conn, today - timedelta(days=30), today)),
    }


@router.get("/dashboards/meters/{meter_id}", response_class=HTMLResponse, summary="Analyst meter page")
def meter_page(
    request: Request,
    meter_id: str,
    now: str | None = Query(None, description="as-of time (ISO); default the current time"),
    days: int = Query(90, ge=7, le=1100, description="days of daily history"),
    hours: int = Query(168, ge=24, le=24 * 62, description="hours of hourly history"),
    user: str = Depends(require_analyst),
    conn: psycopg.Connection = Depends(get_db),
) -> HTMLResponse:
    settings: Settings = request.app.state.settings
    info = q.meter_info(conn, meter_id)
    if info is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"meter {meter_id} not found")
    return _meter_response(request, conn, info, now, days, hours, settings, customer=None, user=user)


def _meter_response(request: Request, conn: psycopg.Connection, info: dict[str, Any], now: str | None, days: int,
                    hours: int, settings: Settings, customer: str | None, user: str = "") -> HTMLResponse:
    meter_id = info["meter_id"]
    lang = page_lang(request)
    label = Labels(lang.gettext).kind
    at = parse_now(now, settings.timezone)
    data = meter_data(conn, meter_id, at, days, hours, customer is None)
    daily, last_year, alerts, vee, hourly = (data[k] for k in ("daily", "last_year", "alerts", "vee", "hourly"))
    incidents = data["incidents"]
    # plotly.js shows wall-clock time: convert instants to the utility's time zone
    hourly = hourly.with_columns(pl.col("hour").dt.convert_time_zone(settings.timezone))
    alerts = alerts.with_columns(pl.col("first_seen", "last_seen").dt.convert_time_zone(settings.timezone))
    charts = {
        "meter": figures.meter_figure(daily, last_year, alerts, vee, meter_id, label, lang),
        "hourly": figures.meter_hourly_figure(hourly, meter_id, lang),
    }
    known = daily.filter(~pl.col("missing"))
    extra = {} if customer else {**analyst_context(at, now, user, data["data_as_of"]),
                                 "events": [e.as_dict() for e in data["events"]]}
    return render(request, "meter.html", {
        **extra,
        "title": lang.gettext("Meter %(meter)s") % {"meter": meter_id},
        "at": at,
        "now_q": _now_param(at, now),
        "info": info,
        "charts": {k: fig_json(v) for k, v in charts.items()},
        "total_m3": float(daily["consumption_m3"].sum() or 0),
        "last_year_m3": float(last_year["consumption_m3"].sum() or 0),
        "missing_days": int(daily["missing"].sum()),
        "missing_hours": int(hourly["missing"].sum()),
        "last_index": known["index_m3"][-1] if not known.is_empty() else None,
        "alerts": alerts.to_dicts(),
        "incidents": incidents,
        "incident_totals": incidents_store.incident_totals(incidents),
        "vee": vee.to_dicts(),
        "days": days,
        "customer": customer,
    })


def meter_data(conn: psycopg.Connection, meter_id: str, at: datetime, days: int, hours: int,
               analyst: bool = True) -> dict[str, Any]:
    """Every query behind the meter page (the baseline of `meterflow bench pages`)."""
    tz = q.rollup_timezone(conn)
    today = at.astimezone(ZoneInfo(tz)).date()
    start, end = today - timedelta(days=days - 1), today + timedelta(days=1)
    lo = datetime(start.year, start.month, start.day, tzinfo=ZoneInfo(tz))
    hour_end = at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    data: dict[str, Any] = {
        "daily": q.meter_daily(conn, meter_id, start, end, tz),
        "last_year": q.meter_daily(conn, meter_id, start - timedelta(days=364), end - timedelta(days=364), tz),
        "alerts": q.meter_alerts(conn, meter_id, lo, at), "vee": q.meter_vee_flags(conn, meter_id, start, end),
        "hourly": q.meter_hourly(conn, meter_id, hour_end - timedelta(hours=hours), hour_end),
        "incidents": incidents_store.meter_incidents(conn, meter_id, at),
    }
    if analyst:
        data["data_as_of"] = q.data_as_of(conn, at)
        data["events"] = wf.events(conn, meter_id=meter_id, limit=100)
    return data
