"""Manual (customer self-) reads: checked like any other reading and against the reads on both sides of it,
then stored as source='manual' with who entered it.

Refusals are exceptions without transport codes; the web app and the CLI map them to their own answers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import psycopg

from meterflow.plausibility import PlausibilitySettings, check_index, check_time
from storage.flavor import ensure_partitions


class ManualReadError(ValueError):
    """A refused manual read: the message says why and what to do (English, for the API and the CLI); `code`
    and `values` let a page say the same in its own words and language."""

    def __init__(self, message: str, code: str = "refused", **values: Any) -> None:
        super().__init__(message)
        self.code = code
        self.values = values


class UnknownMeter(ManualReadError):
    """The meter is not in the registry."""


class ConflictingRead(ManualReadError):
    """Another value is stored for this meter at exactly this time."""


class ImplausibleRead(ManualReadError):
    """The value or time breaks a reading rule, or does not fit between the neighbouring reads."""


def manual_window(plausibility: PlausibilitySettings, future_tolerance_s: float) -> PlausibilitySettings:
    """The reading-time window for reads people type: a meter read by hand is never hours ahead of now."""
    hours = min(plausibility.future_tolerance_hours, future_tolerance_s / 3600.0)
    return plausibility.model_copy(update={"future_tolerance_hours": hours})


def _neighbours(conn: psycopg.Connection, meter_id: str, time: datetime) -> tuple[Any, Any]:
    prev = conn.execute("SELECT time, total_m3 FROM last_index_before(%s, %s, true)", (meter_id, time)).fetchone()
    nxt = conn.execute("SELECT time, total_m3 FROM first_index_after(%s, %s)", (meter_id, time)).fetchone()
    return prev, nxt


def add_manual_read(
    conn: psycopg.Connection, meter_id: str, time: datetime, index_m3: float, *, allow_decrease: bool = False,
    note: str | None = None, now: datetime | None = None, window: PlausibilitySettings | None = None,
    entered_by: str | None = None,
) -> dict[str, Any]:
    """Validate and store a customer self-read as source='manual'; raises a ManualReadError subclass."""
    now = now or datetime.now(UTC)
    if time.tzinfo is None:
        raise ImplausibleRead("time has no timezone: give it with an offset, e.g. 2024-03-31T18:00:00+02:00",
                              "naive_time", time=time)
    refused = check_time(time, now, window)
    if refused is not None:
        raise ImplausibleRead(f"{refused.reason}; send the time the meter was read", refused.code, time=time)
    meter = conn.execute("SELECT install_date, removal_date, register_digits FROM meters WHERE meter_id = %s",
                         (meter_id,)).fetchone()
    if meter is None:
        raise UnknownMeter(f"unknown meter {meter_id[:64]!r}: check the number printed on the meter", "unknown_meter")
    install, removal, digits = meter
    refused = check_index(index_m3, digits)
    if refused is not None:
        raise ImplausibleRead(refused.reason, refused.code, index=index_m3)
    if install is not None and time.date() < install:
        raise ImplausibleRead(f"meter {meter_id} was installed on {install}; this read is dated before that",
                              "before_install", day=install)
    if removal is not None and time.date() > removal:
        raise ImplausibleRead(f"meter {meter_id} was removed on {removal}; read the meter installed since",
                              "after_removal", day=removal)
    prev, nxt = _neighbours(conn, meter_id, time)
    if prev is not None and prev[0] == time:
        if prev[1] == index_m3:
            return {"meter_id": meter_id, "time": time.isoformat(), "total_m3": index_m3, "stored": False,
                    "detail": "same read already stored"}
        raise ConflictingRead(f"meter {meter_id} already has {prev[1]} m3 at {time.isoformat()}; "
                              "send a different time or correct the stored read", "conflict", stored=prev[1], time=time)
    if not allow_decrease:
        if prev is not None and index_m3 < prev[1]:
            raise ImplausibleRead(
                f"index {index_m3} m3 is below the last index {prev[1]} m3 read at {prev[0].isoformat()}; "
                "check the digits, or flag it (allow_decrease) if the meter was replaced or rolled over",
                "below_last", index=index_m3, last=prev[1], last_time=prev[0])
        if nxt is not None and index_m3 > nxt[1]:
            raise ImplausibleRead(
                f"index {index_m3} m3 is above the later index {nxt[1]} m3 read at {nxt[0].isoformat()}; "
                "a backdated read cannot exceed what the meter showed afterwards: check the digits and the date",
                "above_next", index=index_m3, next=nxt[1], next_time=nxt[0])
    ensure_partitions(conn, time, time)
    fields: dict[str, Any] = {"entered_at": now.isoformat()}
    if entered_by:
        fields["entered_by"] = entered_by
    if allow_decrease:
        fields["decrease_flagged"] = True
    if note:
        fields["note"] = note
    conn.execute(
        "INSERT INTO readings (meter_id, time, total_m3, source, received_at, fields)"
        " VALUES (%s, %s, %s, 'manual', %s, %s::jsonb)", (meter_id, time, index_m3, now, json.dumps(fields))
    )
    conn.commit()
    return {"meter_id": meter_id, "time": time.isoformat(), "total_m3": index_m3, "stored": True, "detail": "stored"}
