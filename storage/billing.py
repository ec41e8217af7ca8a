"""Database I/O of billing runs: load readings/registry/history frames, store runs, results and audit.

The computation itself is analytics.vee.core.compute_billing (pure); this module only moves frames in and out.
Imported readings live in storage/reading_import.py, manual reads in storage/manual_reads.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
import psycopg

from analytics.vee.config import VeeConfig
from analytics.vee.core import HISTORY_SCHEMA, REGISTRY_SCHEMA, BillingOutput
from meterflow.periods import add_months, local_midnight
from storage.tariffs import load_tariffs

Progress = Callable[[str, int, int], None]

# one list for the CLI export and the HTTP API (the same rows, the same columns); new columns go at the end
EXPORT_COLUMNS = ["meter_id", "period_start", "period_end", "start_index_m3", "end_index_m3", "consumption_m3",
                  "quality", "method", "exceptions", "customer_ref", "premise_ref", "tariff_group", "role",
                  "segment_start", "segment_end", "water_m3", "sewage_m3"]
# chunks are ranges of this family key: the premise (else the meter), and for a garden sub-meter its main meter's,
# so a garden, its main meter and an exchanged main meter's successor are billed together (sewage, rule 15)
FAMILY_KEY = ("coalesce((SELECT coalesce(p.premise_ref, p.meter_id) FROM meters p WHERE p.meter_id ="
              " meters.parent_meter_id AND meters.role = 'garden'), meters.premise_ref, meters.meter_id)")


def _meter_filter(meter_range: tuple[str, str] | None, col: str = "meter_id",
                  families: bool = False) -> tuple[str, list[Any]]:
    """Meters with meter_id in the range, or (families: a chunk of meter_ranges) whose FAMILY_KEY is in it."""
    if meter_range is None:
        return "", []
    if not families:
        return f" AND {col} >= %s AND {col} <= %s", [meter_range[0], meter_range[1]]
    return (f" AND {col} IN (SELECT meter_id FROM meters WHERE {FAMILY_KEY} BETWEEN %s AND %s)",
            [meter_range[0], meter_range[1]])


def load_registry(conn: psycopg.Connection, meter_range: tuple[str, str] | None = None,
                  families: bool = False) -> pl.DataFrame:
    where, params = _meter_filter(meter_range, families=families)
    rows = conn.execute(
        "SELECT meter_id, premise_ref, install_date, install_index_m3, removal_date, removal_index_m3,"
        " register_digits::bigint, customer_ref, role, parent_meter_id, tariff_group"
        f" FROM meters WHERE true{where} ORDER BY meter_id", params
    ).fetchall()
    return pl.DataFrame(rows, schema=REGISTRY_SCHEMA, orient="row")


def meter_ranges(conn: psycopg.Connection, chunk: int) -> list[tuple[str, str]]:
    """The registry split into consecutive family-key ranges of at most `chunk` families (one task per range):
    a garden sub-meter always lands in its main meter's chunk, meters of one premise in one chunk."""
    ids = [r[0] for r in conn.execute(f"SELECT DISTINCT {FAMILY_KEY} AS k FROM meters ORDER BY k")]
    return [(ids[i], ids[min(i + chunk, len(ids)) - 1]) for i in range(0, len(ids), chunk)]


def load_readings(
    conn: psycopg.Connection, start: datetime, end: datetime, meter_range: tuple[str, str] | None = None,
    families: bool = False,
) -> pl.DataFrame:
    """Reads in [start, end), the nearest read on either side of that window for each meter (however far: a
    boundary inside a long gap is still interpolated), and stored conflicts; `seq` is the arrival order per meter."""
    where, params = _meter_filter(meter_range, families=families)
    mwhere, mparams = _meter_filter(meter_range, "m.meter_id", families)
    cols = "r.meter_id, r.time, r.total_m3, r.source, r.received_at, r.fields"
    sql = (
        "SELECT meter_id, time, total_m3, source, (row_number() OVER (PARTITION BY meter_id ORDER BY"
        " received_at NULLS FIRST, (fields->>'line')::bigint NULLS FIRST, time))::bigint AS seq,"
        " fields->>'notation' AS notation, coalesce((fields->>'dst_fold')::boolean, false) AS dst_fold FROM ("
        f" SELECT {cols} FROM readings_between(%s, %s) r WHERE total_m3 IS NOT NULL{where}"
        f" UNION ALL SELECT {cols} FROM meters m CROSS JOIN LATERAL last_index_before(m.meter_id, %s) r"
        f" WHERE true{mwhere}"
        f" UNION ALL SELECT {cols} FROM meters m CROSS JOIN LATERAL first_index_after(m.meter_id, %s, true) r"
        f" WHERE true{mwhere}) w"
        " UNION ALL SELECT meter_id, time, total_m3, source, 1000000000 + id, NULL, false"
        f" FROM reading_conflicts WHERE time >= %s AND time < %s{where}"
    )
    rows = conn.execute(sql, [start, end, *params, start, *mparams, end, *mparams, start, end, *params]).fetchall()
    return pl.DataFrame(rows, schema={"meter_id": pl.String, "time": pl.Datetime("us", "UTC"),
                                      "total_m3": pl.Float64, "source": pl.String, "seq": pl.Int64,
                                      "notation": pl.String, "dst_fold": pl.Boolean}, orient="row")


def load_history(
    conn: psycopg.Connection, period_start: date, timezone: str, meter_range: tuple[str, str] | None = None,
    families: bool = False,
) -> pl.DataFrame:
    """Earlier periods: stored billing results (latest run) and, where none cover a month, months from readings."""
    where, params = _meter_filter(meter_range, "r.meter_id", families)
    lo = add_months(period_start, -13)
    billed = conn.execute(
        "SELECT DISTINCT ON (r.meter_id, r.period_start) r.meter_id, r.period_start, r.period_end,"
        " r.consumption_m3, r.quality, r.end_index_m3 FROM billing_results r JOIN billing_runs b USING (run_id)"
        " WHERE b.status = 'finished' AND r.period_end <= %s AND r.period_start >= %s" + where +
        " ORDER BY r.meter_id, r.period_start, r.run_id DESC", [period_start, lo, *params]
    ).fetchall()
    hist = pl.DataFrame(billed, schema=HISTORY_SCHEMA, orient="row")
    where2, params2 = _meter_filter(meter_range, families=families)
    derived = conn.execute(
        "SELECT meter_id, (date_trunc('month', time AT TIME ZONE %s))::date AS m,"
        " extract(epoch FROM max(time) - min(time)) / 86400.0 AS span_d,"
        " (array_agg(total_m3 ORDER BY time DESC))[1] - (array_agg(total_m3 ORDER BY time))[1] AS used"
        " FROM readings_between(%s, %s) r WHERE total_m3 IS NOT NULL" + where2 +
        # only meters without a billed previous period (in steady state: new meters only)
        " AND NOT EXISTS (SELECT 1 FROM billing_results br WHERE br.meter_id = r.meter_id"
        " AND br.period_end = %s AND br.consumption_m3 IS NOT NULL) GROUP BY 1, 2",
        [timezone, local_midnight(lo, timezone), local_midnight(period_start, timezone), *params2, period_start],
    ).fetchall()
    rows = []
    for meter_id, m, span_d, used in derived:
        nm = add_months(m, 1)
        if span_d is None or float(span_d) < 1.0 or used is None or used < 0:
            continue
        rows.append((meter_id, m, nm, float(used) * (nm - m).days / float(span_d), "ACTUAL", None))
    months = pl.DataFrame(rows, schema=HISTORY_SCHEMA, orient="row")
    if hist.height and months.height:
        covered = hist.filter(pl.col("consumption_m3").is_not_null()).select(
            "meter_id", pl.col("period_start").alias("_s"), pl.col("period_end").alias("_e")
        )
        overl = months.join(covered, on="meter_id", how="inner").filter(
            (pl.col("period_start") < pl.col("_e")) & (pl.col("period_end") > pl.col("_s"))
        ).select("meter_id", "period_start").unique()
        months = months.join(overl, on=["meter_id", "period_start"], how="anti")
    return pl.concat([hist, months]).sort(["meter_id", "period_start"])


def load_inputs(
    conn: psycopg.Connection, period_start: date, period_end: date, config: VeeConfig, timezone: str,
    meter_range: tuple[str, str] | None = None, families: bool = False,
) -> dict[str, pl.DataFrame]:
    """The frames of compute_billing for the meters of `meter_range` (meter_ids; with families=True a chunk of
    meter_ranges: family keys, so gardens come with their main meter)."""
    b0, b1 = local_midnight(period_start, timezone), local_midnight(period_end, timezone)
    return {
        "readings": load_readings(conn, b0 - timedelta(days=config.lookback_days),
                                  b1 + timedelta(days=config.lookahead_days), meter_range, families),
        "registry": load_registry(conn, meter_range, families),
        "history": load_history(conn, period_start, timezone, meter_range, families),
        "tariffs": load_tariffs(conn),
    }


def start_run(conn: psycopg.Connection, period_start: date, period_end: date, config: VeeConfig) -> int:
    row = conn.execute(
        "INSERT INTO billing_runs (period_start, period_end, config) VALUES (%s, %s, %s::jsonb) RETURNING run_id",
        (period_start, period_end, json.dumps(config.model_dump())),
    ).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0])


STORED_COLUMNS = ["meter_id", "period_start", "period_end", "start_index_m3", "end_index_m3", "consumption_m3",
                  "pre_vee_consumption_m3", "quality", "method", "exceptions", "flags", "details", "water_m3",
                  "sewage_m3", "segment_start", "segment_end", "customer_ref", "premise_ref", "tariff_group", "role"]


def save_output(conn: psycopg.Connection, run_id: int, output: BillingOutput) -> None:
    """Append one chunk's results and audit rows to a run (COPY)."""
    res = output.results
    with conn.cursor() as cur:
        with cur.copy(
            f"COPY billing_results (run_id, {', '.join(STORED_COLUMNS)}) FROM STDIN"
        ) as copy:
            for row in res.select(STORED_COLUMNS).iter_rows():
                copy.write_row((run_id, *row))
        with cur.copy("COPY billing_audit (run_id, meter_id, rule, action, before, after, reason) FROM STDIN") as copy:
            for a in output.audit.iter_rows(named=True):
                copy.write_row((run_id, a["meter_id"], a["rule"], a["action"], a["before"], a["after"], a["reason"]))
    conn.commit()


def finish_run(conn: psycopg.Connection, run_id: int, status: str = "finished") -> None:
    conn.execute("UPDATE billing_runs SET finished_at = now(), status = %s WHERE run_id = %s", (status, run_id))
    conn.commit()


def load_results(
    conn: psycopg.Connection, date_from: date, date_to: date, *, after: tuple[str, date] | None = None,
    limit: int | None = None, meter_ids: list[str] | None = None,
) -> pl.DataFrame:
    """Results of the latest finished run for each meter and period inside [date_from, date_to], keyset-paged;
    `meter_ids` narrows it to some meters (a customer's page shows exactly what billing exports)."""
    params: list[Any] = [date_from, date_to]
    only = ""
    if meter_ids is not None:
        only = " AND r.meter_id = ANY(%s)"
        params.append(meter_ids)
    page = ""
    if after is not None:
        page = " WHERE (meter_id, period_start) > (%s, %s)"
        params += [after[0], after[1]]
    sql = (
        "SELECT * FROM (SELECT DISTINCT ON (r.meter_id, r.period_start) r.meter_id, r.period_start, r.period_end,"
        " r.start_index_m3, r.end_index_m3, r.consumption_m3, r.quality, r.method, r.exceptions, r.customer_ref,"
        " r.premise_ref, r.tariff_group, r.role, r.segment_start, r.segment_end, r.water_m3, r.sewage_m3, r.run_id"
        " FROM billing_results r JOIN billing_runs b USING (run_id)"
        " WHERE b.status = 'finished' AND r.period_start >= %s AND r.period_end <= %s" + only +
        " ORDER BY r.meter_id, r.period_start, r.run_id DESC) latest" + page + " ORDER BY meter_id, period_start"
    )
    if limit is not None:
        sql += " LIMIT %s"
        params.append(limit)
    rows = conn.execute(sql, params).fetchall()
    return pl.DataFrame(rows, schema={"meter_id": pl.String, "period_start": pl.Date, "period_end": pl.Date,
                                      "start_index_m3": pl.Float64, "end_index_m3": pl.Float64,
                                      "consumption_m3": pl.Float64, "quality": pl.String, "method": pl.String,
                                      "exceptions": pl.List(pl.String), "customer_ref": pl.String,
                                      "premise_ref": pl.String, "tariff_group": pl.String, "role": pl.String,
                                      "segment_start": pl.Date, "segment_end": pl.Date, "water_m3": pl.Float64,
                                      "sewage_m3": pl.Float64, "run_id": pl.Int64}, orient="row")
