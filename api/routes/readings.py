"""Manual (customer self-) reads: validated like any other read and stored as source='manual', with the
name of the token that entered it."""

from __future__ import annotations

from datetime import datetime

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from api.deps import READINGS_WRITE, get_db, get_settings, require_readings_write
from api.security import Text

router = APIRouter(prefix="/api/v1/readings", tags=["readings"], dependencies=READINGS_WRITE)


class ManualRead(BaseModel):
    meter_id: Text = Field(min_length=1, max_length=64, description="as printed on the meter")
    time: datetime = Field(description="when the meter was read, ISO 8601 with an offset")
    index_m3: float = Field(ge=0, allow_inf_nan=False, description="the index shown by the meter, in m3")
    allow_decrease: bool = Field(False, description="accept an index below the last one (replacement, rollover)")
    note: Text | None = Field(None, max_length=500)


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
               422: {"description": "implausible value or time, out of order with the neighbouring reads, or "
                                    "invalid input"}},
)
def manual_read(
    body: ManualRead, request: Request, conn: psycopg.Connection = Depends(get_db),
    who: str = Depends(require_readings_write),
) -> ManualReadResult:
    from storage.manual_reads import (
        ConflictingRead,
        ManualReadError,
        UnknownMeter,
        add_manual_read,
        manual_window,
    )

    settings = get_settings(request)
    window = manual_window(settings.plausibility, settings.vee.future_tolerance_s)
    try:
        out = add_manual_read(conn, body.meter_id, body.time, body.index_m3, allow_decrease=body.allow_decrease,
                              note=body.note, window=window, entered_by=who)
    except ManualReadError as exc:
        code = {UnknownMeter: status.HTTP_404_NOT_FOUND, ConflictingRead: status.HTTP_409_CONFLICT}.get(
            type(exc), status.HTTP_422_UNPROCESSABLE_CONTENT)
        raise HTTPException(code, str(exc)) from exc
    return ManualReadResult(**out)
