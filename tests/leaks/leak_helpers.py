"""Crafted series for the detector tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

T0 = datetime(2026, 6, 1, tzinfo=UTC)  # Europe/Warsaw is UTC+2 then: local 02-05 = 00-03 UTC


def readings(meter: str, litres_per_hour: list[float], start: datetime = T0,
             alarms: dict[int, list[str]] | None = None) -> pl.DataFrame:
    """One reading per hour at hh:59 whose index includes that hour's litres, plus a zero reading at start-1min,
    so hourly_use(...) gives exactly `litres_per_hour[k]` for the hour start+k."""
    times = [start - timedelta(minutes=1)]
    times += [start + timedelta(hours=k, minutes=59) for k in range(len(litres_per_hour))]
    idx = [0.0]
    for v in litres_per_hour:
        idx.append(idx[-1] + v)
    al = [[] for _ in times]
    for k, words in (alarms or {}).items():
        al[k + 1] = words
    return pl.DataFrame({"meter_id": [meter] * len(times), "time": times, "total_m3": [i / 1000.0 for i in idx],
                         "alarms": al}, schema={"meter_id": pl.String(), "time": pl.Datetime("us", "UTC"),
                                                "total_m3": pl.Float64(), "alarms": pl.List(pl.String())})


def household_day() -> list[float]:
    """24 hours (UTC) of ordinary use: dry from 22 to 04 UTC (00-06 local), 120 L in the day."""
    day = [0.0] * 24
    for h, v in {4: 10, 5: 30, 6: 20, 10: 5, 15: 10, 17: 25, 18: 15, 20: 5}.items():
        day[h] = float(v)
    return day
