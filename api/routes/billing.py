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
    meter_id: str
    period_start: date
    period_end: date = Field(description="exclusive")
    start_index_m3: float | None
    end_index_m3: float | None
    consumption_m3: float | None = Field(description="null when it could not be determined (see exceptions)")
    quality: Literal["ACTUAL", "ESTIMATED", "EDITED"]
    method: str = Field(description="how the value was obtained, e.g. start:interpolated;end:actual_read")
    exceptions: list[str] = Field(description="VEE exceptions; a row with any exception needs review before billing")


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
    date_from: Annotated[date, Query(alias="from", description="periods starting on or after (YYYY-MM-DD)")],
    date_to: Annotated[date, Query(alias="to", description="periods ending on or before (YYYY-MM-DD)")],
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    fmt: Annotated[Literal["json", "csv"] | None, Query(alias="format")] = None,
    conn: psycopg.Connection = Depends(get_db),
) -> ConsumptionPage | Response:
    """Results of the latest finished billing run for each meter and period within [from, to]."""
    from storage.billing import load_results

    if date_to < date_from:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"to={date_to} is before from={date_from}")
    after = _decode(cursor) if cursor else None
    df = load_results(conn, date_from, date_to, after=after, limit=limit + 1)
    more = df.height > limit
    df = df.head(limit).drop("run_id")
    nxt = _encode(df["meter_id"][-1], df["period_start"][-1]) if more else None
    want_csv = fmt == "csv" or (fmt is None and "text/csv" in request.headers.get("accept", ""))
    if want_csv:
        import polars as pl

        from meterflow.spreadsheet import safe_frame

        text = safe_frame(df.with_columns(pl.col("exceptions").list.join("|"))).write_csv()
        headers = {"X-Next-Cursor": nxt} if nxt else {}
        return Response(text, media_type="text/csv", headers=headers)
    return ConsumptionPage(items=[ConsumptionRow(**r) for r in df.to_dicts()], next_cursor=nxt)
