"""Billing API: consumption per meter and period from the latest billing run (JSON or CSV, keyset-paged)."""

from __future__ import annotations

import base64
import binascii
from datetime import date
from typing import Annotated, Literal

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import BILLING_READ, get_db

router = APIRouter(prefix="/api/v1/billing", tags=["billing"], dependencies=BILLING_READ)


class ConsumptionRow(BaseModel):
    """One row of `meterflow billing export` (storage.billing.EXPORT_COLUMNS), field for field."""

    meter_id: str
    period_start: date
    period_end: date = Field(description="exclusive")
    start_index_m3: float | None
    end_index_m3: float | None
    consumption_m3: float | None = Field(description="null when it could not be determined (see exceptions)")
    quality: Literal["ACTUAL", "ESTIMATED", "EDITED"]
    method: str = Field(description="how the value was obtained, e.g. start:interpolated;end:actual_read")
    exceptions: list[str] = Field(description="VEE exceptions; a row with any exception needs review before billing")
    customer_ref: str | None = Field(default=None, description="the customer billed (registry, at run time)")
    premise_ref: str | None = Field(default=None, description="the premise (registry, at run time)")
    tariff_group: str | None = Field(default=None, description="the meter's tariff group ('default' when none)")
    role: str | None = Field(default=None, description="main, garden (sub-meter) or inlet")
    segment_start: date | None = Field(default=None, description="the tariff segment this row bills (inclusive)")
    segment_end: date | None = Field(default=None, description="end of the tariff segment (exclusive)")
    water_m3: float | None = Field(default=None, description="water volume billed (= consumption_m3)")
    sewage_m3: float | None = Field(
        default=None, description="sewage volume: main meter minus its garden sub-meters, never below 0; 0 for a "
                                  "garden sub-meter; null for an inlet or when a figure is missing")


class TariffIn(BaseModel):
    tariff_group: str = Field(min_length=1, max_length=64, description="as meters.tariff_group; 'default' when none")
    effective_date: date = Field(description="takes effect at local midnight of this day")
    note: str = Field(default="", max_length=500)
    tariff_code: str | None = Field(default=None, max_length=64)


class TariffOut(BaseModel):
    tariff_group: str
    effective_date: date
    tariff_code: str
    note: str
    created_by: str


class ConsumptionPage(BaseModel):
    items: list[ConsumptionRow]
    next_cursor: str | None = Field(description="pass as cursor= for the next page; null on the last page")


def _encode(meter_id: str, period_start: date) -> str:
    return base64.urlsafe_b64encode(f"{meter_id}\x1f{period_start.isoformat()}".encode()).decode()


def _decode(cursor: str) -> tuple[str, date]:
    try:
        meter_id, ps = base64.urlsafe_b64decode(cursor.encode()).decode().split("\x1f")
        return meter_id, date.fromisoformat(ps)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            "cursor is not valid: pass next_cursor from the previous page unchanged") from exc


@router.get(
    "/consumption",
    response_model=ConsumptionPage,
    summary="Billing consumption per meter and period",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                     "description": "JSON page, or CSV with Accept: text/csv or format=csv (next cursor in the "
                                    "X-Next-Cursor header)"}},
)
def consumption(
    request: Request,
    date_from: Annotated[str | None, Query(alias="from", description="periods starting on or after (YYYY-MM-DD)")]
    = None,
    date_to: Annotated[str | None, Query(alias="to", description="EXCLUSIVE end: periods ending on or before this "
                                                                 "day (YYYY-MM-DD); a month's last day is refused")]
    = None,
    period: Annotated[str | None, Query(description="a calendar month YYYY-MM instead of from/to")] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    fmt: Annotated[Literal["json", "csv"] | None, Query(alias="format")] = None,
    conn: psycopg.Connection = Depends(get_db),
) -> ConsumptionPage | Response:
    """Results of the latest finished billing run for each meter and tariff segment inside [from, to): the same
    rows and columns as `meterflow billing export`."""
    from meterflow.periods import PeriodError, period_bounds
    from storage.billing import EXPORT_COLUMNS, load_results

    try:
        start, end = period_bounds(date_from, date_to, period, names=("from", "to", "period"))
    except PeriodError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    after = _decode(cursor) if cursor else None
    df = load_results(conn, start, end, after=after, limit=limit + 1)
    more = df.height > limit
    df = df.head(limit).select(EXPORT_COLUMNS)
    nxt = _encode(df["meter_id"][-1], df["period_start"][-1]) if more else None
    want_csv = fmt == "csv" or (fmt is None and "text/csv" in request.headers.get("accept", ""))
    if want_csv:
        import polars as pl

        from meterflow.spreadsheet import safe_frame

        text = safe_frame(df.with_columns(pl.col("exceptions").list.join("|"))).write_csv()
        headers = {"X-Next-Cursor": nxt} if nxt else {}
        return Response(text, media_type="text/csv", headers=headers)
    return ConsumptionPage(items=[ConsumptionRow(**r) for r in df.to_dicts()], next_cursor=nxt)


@router.get("/tariffs", response_model=list[TariffOut], summary="Tariff changes per tariff group")
def list_tariff_changes(group: Annotated[str | None, Query(description="only this group")] = None,
                        conn: psycopg.Connection = Depends(get_db)) -> list[TariffOut]:
    """Every tariff change (as `meterflow tariffs list`)."""
    from storage.tariffs import list_tariffs

    return [TariffOut(**{k: getattr(t, k) for k in TariffOut.model_fields}) for t in list_tariffs(conn, group)]


@router.post("/tariffs", response_model=TariffOut, status_code=status.HTTP_201_CREATED,
             summary="Add a tariff change of one group", responses={409: {"description": "already one that day"}})
def add_tariff_change(body: TariffIn, request: Request, conn: psycopg.Connection = Depends(get_db)) -> TariffOut:
    """Record a tariff change (as `meterflow tariffs add`); the authenticated name is recorded as created_by."""
    from api.pages.auth import require_analyst
    from storage.tariffs import TariffExists, add_tariff

    actor = require_analyst(request)
    try:
        t = add_tariff(conn, body.tariff_group, body.effective_date, note=body.note, code=body.tariff_code,
                       actor=actor)
    except TariffExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from exc
    return TariffOut(**{k: getattr(t, k) for k in TariffOut.model_fields})
