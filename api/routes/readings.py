"""Manual (customer self-) reads: validated like any other read and stored as source='manual'."""

from __future__ import annotations

from datetime import datetime

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from api.deps import get_db, get_settings, require_token

router = APIRouter(prefix="/api/v1/readings", tags=["readings"], dependencies=[Depends(require_token)])


class ManualRead(BaseModel):
    meter_id: str = Field(min_length=1, max_length=64, description="as printed on the meter")
    time: datetime = Field(description="when the meter was read, ISO 8601 with an offset")
    index_m3: float = Field(ge=0, description="the index shown by the meter, in m3")
    allow_decrease: bool = Field(False, description="accept an index below the last one (replacement, rollover)")
    note: str | None = Field(None, max_length=500)


class ManualReadResult(BaseModel):
    meter_id: str
    time: str
    total_m3: float
    stored: bool = Field(description="false when the same read was already stored")
    detail: str


@router.post(
    "/manual",
    response_model=ManualReadResult,
    status_code=201,
    summary="Add a customer self-read",
    responses={404: {"description": "unknown meter"}, 409: {"description": "another value at that time"},
               422: {"description": "future time, index below the last one, or invalid input"}},
)
def manual_read(
    body: ManualRead, request: Request, conn: psycopg.Connection = Depends(get_db)
) -> ManualReadResult:
    from storage.billing import ManualReadError, add_manual_read

    settings = get_settings(request)
    try:
        out = add_manual_read(conn, body.meter_id, body.time, body.index_m3, allow_decrease=body.allow_decrease,
                              note=body.note, future_tolerance_s=settings.vee.future_tolerance_s)
    except ManualReadError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    return ManualReadResult(**out)
