"""Interruptions: the list and GeoJSON for dispatchers and GIS, planned works and street subscriptions by
API, the SMS gateway's inbound webhook ("ADD <street>" / "STOP"), and the maps (dispatchers, residents)."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

import psycopg
from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field

from api.deps import get_db
from api.pages.auth import require_analyst
from meterflow.config import Settings

router = APIRouter(tags=["interruptions"])


class PlannedWorks(BaseModel):
    district: str = Field(min_length=1, max_length=100)
    streets: list[str] = Field(default_factory=list, description="streets of the district; empty = all of it")
    starts_at: datetime = Field(description="ISO 8601 with an offset")
    ends_at: datetime
    note: str = Field("", max_length=500, description="what residents are told")


class Subscription(BaseModel):
    street: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(None, max_length=32)
    email: str | None = Field(None, max_length=200)


def _stored(conn: psycopg.Connection, state: str | None, tz: str) -> list[dict[str, Any]]:
    from zoneinfo import ZoneInfo

    from storage.interruptions import list_interruptions

    zone = ZoneInfo(tz)
    out = []
    for r in list_interruptions(conn, state=state):
        out.append({k: (v.astimezone(zone).isoformat() if isinstance(v, datetime) else v) for k, v in r.items()})
    return out


@router.get("/api/v1/interruptions", summary="Interruptions (detected and planned), newest first")
def list_route(request: Request, state: str | None = Query(None, pattern="^(open|closed)$"),
               conn: psycopg.Connection = Depends(get_db)) -> list[dict[str, Any]]:
    require_analyst(request)
    settings: Settings = request.app.state.settings
    return _stored(conn, state, settings.timezone)


@router.post("/api/v1/interruptions/planned", status_code=201, summary="Enter planned works")
def planned_route(body: PlannedWorks, request: Request, conn: psycopg.Connection = Depends(get_db)) -> dict[str, Any]:
    actor = require_analyst(request)
    from storage.interruptions import add_planned

    try:
        wid = add_planned(conn, body.district, body.streets, body.starts_at, body.ends_at, body.note, actor)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"id": wid, "created_by": actor}


@router.post("/api/v1/interruptions/subscriptions", status_code=201, summary="Subscribe to a street's notices")
def subscribe_route(body: Subscription, request: Request,
                    conn: psycopg.Connection = Depends(get_db)) -> dict[str, Any]:
    actor = require_analyst(request)
    from storage.interruptions import known_street, subscribe

    street = known_street(conn, body.street)
    if street is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no premises on a street called {body.street!r}")
    try:
        sid = subscribe(conn, street, body.phone, body.email, "api", actor)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"id": sid, "street": street}


@router.post("/api/v1/sms/inbound", response_class=PlainTextResponse, summary="Inbound SMS webhook",
             description="The SMS gateway posts each received SMS as a form (`from`, `text`). 'ADD <street>'"
                         " subscribes the sender to the street, 'STOP' ends every subscription of the sender."
                         " The reply text is returned for the gateway to send back.")
def sms_inbound(request: Request, sender: str = Form(..., alias="from", max_length=32),
                text: str = Form(..., max_length=480), secret: str | None = Query(None),
                conn: psycopg.Connection = Depends(get_db)) -> str:
    settings: Settings = request.app.state.settings
    want = settings.interruptions.sms_inbound_secret
    if want is not None and not hmac.compare_digest((secret or "").encode(), want.get_secret_value().encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "webhook secret not accepted")
    from notify.interruption_notices import parse_sms_keyword
    from storage.interruptions import known_street, subscribe, unsubscribe_phone

    cmd, arg = parse_sms_keyword(text)
    if cmd == "add" and arg:
        street = known_street(conn, arg)
        if street is None:
            return f"We do not know a street called '{arg}'. Send ADD and the street name as on your bill."
        subscribe(conn, street, sender, None, "sms", f"sms:{sender}")
        return f"You will get a message when water is cut off or back in {street}. Send STOP to end."
    if cmd == "stop":
        n = unsubscribe_phone(conn, sender)
        return f"Done: {n} subscription(s) ended." if n else "You had no subscriptions."
    return "Send ADD <street> for notices about water cut-offs in a street, STOP to end them."


def _map_data(conn: psycopg.Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from storage.interruptions import list_interruptions, map_points

    return map_points(conn), list_interruptions(conn, state="open", kind="supply")


@router.get("/api/v1/interruptions.geojson", summary="Premises and open interruptions as GeoJSON (GIS)")
def geojson_route(request: Request, conn: psycopg.Connection = Depends(get_db)) -> JSONResponse:
    require_analyst(request)
    from dashboards.interruption_map import geojson

    points, open_ = _map_data(conn)
    return JSONResponse(geojson(points, open_), media_type="application/geo+json")


@router.get("/public/interruptions.geojson", summary="Streets without water now (public)")
def public_geojson(conn: psycopg.Connection = Depends(get_db)) -> JSONResponse:
    from dashboards.interruption_map import geojson

    points, open_ = _map_data(conn)
    return JSONResponse(geojson(points, open_, public=True), media_type="application/geo+json")


def _page(request: Request, conn: psycopg.Connection, public: bool) -> HTMLResponse:
    from api.routes.dashboards import fig_json, page_lang, render
    from dashboards.interruption_map import map_figure

    lang = page_lang(request)
    points, open_ = _map_data(conn)
    return render(request, "interruptions_map.html", {
        "title": lang.gettext("Water supply") if public else lang.gettext("Interruptions and alerts"),
        "public": public, "interruptions": open_,
        "charts": {"map": fig_json(map_figure(points, public, lang))},
    })


@router.get("/dashboards/interruptions", response_class=HTMLResponse, summary="Dispatchers' map")
def dispatcher_map(request: Request, conn: psycopg.Connection = Depends(get_db)) -> HTMLResponse:
    require_analyst(request)
    return _page(request, conn, public=False)


@router.get("/outages", response_class=HTMLResponse, summary="Residents' map of streets without water")
def public_map(request: Request, conn: psycopg.Connection = Depends(get_db)) -> HTMLResponse:
    return _page(request, conn, public=True)
