"""The demo's interruptions step: a simulated supply area (fixtures/interruptions.py: streets, addresses,
contacts, a street cut, a district cut with dry alarms, a communication outage) stored beside the fleet,
then the hourly interruption step at the end of the simulated month, notices in dry-run."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from meterflow.config import Settings


def run_interruptions_demo(settings: Settings, dsn: str, start: datetime, days: int) -> list[dict[str, Any]]:
    """Store the area, detect at its end; returns the stored interruptions with the truth they match."""
    import io

    from fixtures.interruptions import AreaConfig, build_area
    from pipelines.interruptions import run_interruptions
    from storage.flavor import ensure_partitions
    from storage.interruptions import list_interruptions
    from storage.registry import import_meters, parse_meters_csv

    area = build_area(AreaConfig(days=max(days, 14), start=start, district_prefix="AREA-", tz=settings.timezone))
    buf = io.StringIO()
    area.registry.write_csv(buf)
    end = area.readings.get_column("time").max()
    assert isinstance(end, datetime)
    as_of = end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    with psycopg.connect(dsn) as conn:
        import_meters(conn, parse_meters_csv(buf.getvalue()))
        ensure_partitions(conn, start, end)
        with conn.cursor() as cur, cur.copy("COPY readings (meter_id, time, total_m3, alarms) FROM STDIN") as cp:
            for row in area.readings.iter_rows():
                cp.write_row(row)
        conn.commit()
        run_interruptions(conn, settings, as_of, notify=True, dry_run=True)
        found = [r for r in list_interruptions(conn) if r["district"].startswith("AREA-")]
    out = []
    for r in sorted(found, key=lambda r: r["start_at"]):
        truth = [t for t in area.truth.iter_rows(named=True)
                 if t["kind"] == r["kind"] and t["district"] == r["district"]
                 and t["start"] < (r["end_at"] or as_of) and t["end"] > r["start_at"]]
        out.append({**r, "true_start": truth[0]["start"] if truth else None,
                    "true_end": truth[0]["end"] if truth else None})
    return out
