"""`meterflow bench charts`: every chart query on a 100,000-meter fleet with a year of daily rollups.

The dataset is built in a scratch database (dropped at the end): meters, consumption_daily by binary COPY
straight from numpy buffers, a few days of consumption_hourly, meter_last_heard, alerts, dead letters and
billing results; district_daily is then filled by `refresh_dashboards` exactly as the flows do it.
Each chart query runs N times with random meters / districts / customers; p50 and p95 are reported next
to an in-run baseline (a `SELECT 1` round trip and a primary-key lookup)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click
import numpy as np
import psycopg

from bench.timing import timed
from meterflow.config import Settings
from storage import chart_queries as q
from storage import flavor

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
ROLLUP_COLUMNS = ("meter_id, bucket, first_time, last_time, first_m3, last_m3, min_m3, max_m3, max_flow_m3h,"
                  " n_readings")
ROLLUP_DTYPE = np.dtype([
    ("nf", ">i2"),
    ("l0", ">i4"), ("meter_id", "S8"),
    ("l1", ">i4"), ("bucket", ">i8"),
    ("l2", ">i4"), ("first_time", ">i8"),
    ("l3", ">i4"), ("last_time", ">i8"),
    ("l4", ">i4"), ("first_m3", ">f8"),
    ("l5", ">i4"), ("last_m3", ">f8"),
    ("l6", ">i4"), ("min_m3", ">f8"),
    ("l7", ">i4"), ("max_m3", ">f8"),
    ("l8", ">i4"), ("max_flow_m3h", ">f8"),
    ("l9", ">i4"), ("n_readings", ">i4"),
])
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
HOUR_US = 3_600_000_000


@dataclass
class Result:
    name: str
    p50_ms: float
    p95_ms: float


def _us(t: datetime) -> int:
    return (t - PG_EPOCH) // timedelta(microseconds=1)


def _rollup_block(meter_ids: np.ndarray, bucket_us: int, width_us: int, prev_last: np.ndarray,
                  volume: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Binary COPY tuples of one bucket for the meters where `keep`."""
    n = int(keep.sum())
    block = np.zeros(n, dtype=ROLLUP_DTYPE)
    block["nf"] = 10
    for i, field in enumerate(("meter_id", "bucket", "first_time", "last_time", "first_m3", "last_m3", "min_m3",
                               "max_m3", "max_flow_m3h", "n_readings")):
        block[f"l{i}"] = 4 if field == "n_readings" else 8
    first = prev_last[keep] + volume[keep] * 0.01
    last = prev_last[keep] + volume[keep]
    block["meter_id"] = meter_ids[keep]
    block["bucket"] = bucket_us
    block["first_time"] = bucket_us + width_us // 96
    block["last_time"] = bucket_us + width_us - width_us // 96
    block["first_m3"] = first
    block["last_m3"] = last
    block["min_m3"] = first
    block["max_m3"] = last
    block["max_flow_m3h"] = volume[keep] * 4.0 / (width_us / HOUR_US)
    block["n_readings"] = 96 if width_us > HOUR_US else 4
    return block


def rollup_target(conn: psycopg.Connection, table: str) -> str:
    """Where rows of a rollup are loaded: the table itself, or a continuous aggregate's materialization
    hypertable (what the aggregate's view reads; COPY into the view itself is refused)."""
    if flavor.current(conn) == "postgres":
        return table
    row = conn.execute("SELECT format('%%I.%%I', materialization_hypertable_schema, materialization_hypertable_name)"
                       " FROM timescaledb_information.continuous_aggregates WHERE view_name = %s", (table,)).fetchone()
    assert row is not None, f"{table} is not a continuous aggregate"
    return str(row[0])


def _progress(echo: Callable[[str], None], label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    echo(f"  {label}: {done:,}/{total:,} rows ({100 * done / total:.0f} %, {rate / 1e6:.2f} M rows/s)")


def build(conn: psycopg.Connection, meters: int, days: int, hourly_days: int, districts: int, gateways: int,
          tz: str, echo: Callable[[str], None], seed: int = 8) -> datetime:
    """Fill the scratch database; returns the "now" of the dataset (noon of its last day)."""
    rng = np.random.default_rng(seed)
    zone = ZoneInfo(tz)
    today = datetime.now(UTC).astimezone(zone).date()
    first_day = today - timedelta(days=days - 1)
    now = datetime(today.year, today.month, today.day, 12, tzinfo=zone).astimezone(UTC)
    ids = np.array([f"{i:08d}" for i in range(meters)], dtype="S8")
    district_of = rng.integers(0, districts, meters)
    gateway_of = rng.integers(0, gateways, meters)

    t0 = time.perf_counter()
    expiry = [today + timedelta(days=int(d)) for d in rng.integers(-30, 5 * 365, meters)]
    with conn.cursor().copy("COPY meters (meter_id, manufacturer, model, customer_ref, premise_ref, district,"
                            " verification_expiry, install_date) FROM STDIN") as cp:
        for i in range(meters):
            cp.write_row((ids[i].decode(), "KAM", "flowIQ 2200", f"C{i // 2:07d}", f"P{i:08d}",
                          f"DMA-{district_of[i]:02d}", expiry[i], first_day - timedelta(days=400)))
    conn.commit()
    echo(f"meters: {meters:,} in {time.perf_counter() - t0:.1f} s")

    # the rollups: on plain PostgreSQL unlogged scratch tables, indexes built after the load; on TimescaleDB
    # the continuous aggregates' materialization hypertables, left as the server made them
    plain = flavor.current(conn) == "postgres"
    target = {table: rollup_target(conn, table) for table in ("consumption_daily", "consumption_hourly")}
    if plain:
        for table in target:
            conn.execute(f"ALTER TABLE {table} SET UNLOGGED")
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
            conn.execute(f"DROP INDEX {table}_bucket_idx")
    conn.commit()
    base = rng.lognormal(np.log(0.3), 0.5, meters)  # m3/day per meter
    index = rng.uniform(10, 900, meters)
    total = meters * days
    t0 = time.perf_counter()
    done = 0
    daily_volume: list[np.ndarray] = []
    with conn.cursor().copy(f"COPY {target['consumption_daily']} ({ROLLUP_COLUMNS}) FROM STDIN (FORMAT BINARY)") as cp:
        cp.write(COPY_HEADER)
        for d in range(days):
            day = first_day + timedelta(days=d)
            bucket = datetime(day.year, day.month, day.day, tzinfo=zone)
            width = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone) - bucket
            volume = base * rng.uniform(0.5, 1.5, meters)
            keep = rng.random(meters) > 0.01  # 1 % of meter-days missing
            cp.write(_rollup_block(ids, _us(bucket), width // timedelta(microseconds=1), index, volume,
                                   keep).tobytes())
            index = np.where(keep, index + volume, index)
            daily_volume.append(np.where(keep, volume, 0.0))
            done += int(keep.sum())
            if (d + 1) % max(days // 10, 1) == 0 or d == days - 1:
                _progress(echo, "consumption_daily", done, total, t0)
        cp.write(COPY_TRAILER)
    conn.commit()
    echo(f"consumption_daily: {done:,} rows in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    hours = hourly_days * 24
    hourly_index = index - base * hourly_days
    start_hour = datetime(today.year, today.month, today.day, tzinfo=zone).astimezone(UTC) - timedelta(
        days=hourly_days - 1)
    h_done = 0
    with conn.cursor().copy(f"COPY {target['consumption_hourly']} ({ROLLUP_COLUMNS}) FROM STDIN (FORMAT BINARY)"
                            ) as cp:
        cp.write(COPY_HEADER)
        for h in range(hours):
            volume = base / 24 * rng.uniform(0.2, 2.0, meters)
            keep = rng.random(meters) > 0.02
            cp.write(_rollup_block(ids, _us(start_hour + timedelta(hours=h)), HOUR_US, hourly_index, volume,
                                   keep).tobytes())
            hourly_index = np.where(keep, hourly_index + volume, hourly_index)
            h_done += int(keep.sum())
        cp.write(COPY_TRAILER)
    conn.commit()
    echo(f"consumption_hourly: {h_done:,} rows ({hourly_days} days) in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '1GB'")
    for table in target if plain else ():
        conn.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (meter_id, bucket)")
        conn.execute(f"CREATE INDEX {table}_bucket_idx ON {table} (bucket)")
        conn.commit()
    echo(f"rollup indexes built in {time.perf_counter() - t0:.1f} s")

    # district_daily for the whole year from the generated volumes (what the flows accumulate day by day)
    t0 = time.perf_counter()
    with conn.cursor().copy("COPY district_daily (district, day, consumption_m3, n_meters) FROM STDIN") as cp:
        for d, volume in enumerate(daily_volume):
            sums = np.bincount(district_of, weights=volume, minlength=districts)
            counts = np.bincount(district_of, weights=(volume > 0), minlength=districts)
            for k in range(districts):
                cp.write_row((f"DMA-{k:02d}", first_day + timedelta(days=d), float(sums[k]), int(counts[k])))
    # meter_last_heard: most meters heard within the day, some silent for longer, 1 % never
    age_h = np.where(rng.random(meters) < 0.93, rng.uniform(0, 24, meters), rng.uniform(24, 24 * 30, meters))
    heard = rng.random(meters) > 0.01
    with conn.cursor().copy("COPY meter_last_heard (meter_id, gateway_id, last_heard) FROM STDIN") as cp:
        for i in np.flatnonzero(heard).tolist():
            cp.write_row((ids[i].decode(), f"GW-{gateway_of[i]:04d}", now - timedelta(hours=float(age_h[i]))))
    kinds = ["continuous_flow", "night_flow", "burst", "backflow", "stuck", "silent", "meter_alarm:tamper"]
    n_alerts = min(25_000, meters // 4)
    alert_meters = rng.choice(meters, n_alerts, replace=False)
    with conn.cursor().copy("COPY alerts (meter_id, kind, severity, state, first_seen, last_seen, resolved_at,"
                            " rate_l_h, volume_m3) FROM STDIN") as cp:
        for j, i in enumerate(alert_meters.tolist()):
            open_ = j < n_alerts // 5
            first = now - timedelta(hours=float(rng.uniform(1, 24 * 300)))
            last = now if open_ else first + timedelta(hours=float(rng.uniform(1, 100)))
            cp.write_row((ids[i].decode(), kinds[j % len(kinds)], "critical" if j % 5 == 0 else "warning",
                          "open" if open_ else "resolved", first, last, None if open_ else last,
                          float(rng.uniform(5, 200)) if j % 7 else None, None))
    codes = ["no_key", "bad_crc", "unknown_manufacturer", "decrypt_failed", "truncated", "unsupported_ci",
             "bad_length", "stale_key"]
    with conn.cursor().copy("COPY dead_letters (digest, kind, error_code, meter_id, gateway_id, received_at,"
                            " payload, resolved_at) FROM STDIN") as cp:
        for j in range(20_000):
            at = now - timedelta(hours=float(rng.uniform(0, 24 * 60)))
            cp.write_row((j.to_bytes(8, "big"), "wmbus", codes[min(int(rng.exponential(1.5)), len(codes) - 1)],
                          f"{j:08d}", "GW-0001", at, b"\x00", at if j % 10 == 0 else None))
    run = conn.execute("INSERT INTO billing_runs (period_start, period_end, status) VALUES (%s, %s, 'done')"
                       " RETURNING run_id", (first_day, first_day + timedelta(days=30))).fetchone()
    assert run is not None
    with conn.cursor().copy("COPY billing_results (run_id, meter_id, period_start, period_end, consumption_m3,"
                            " quality, method, flags) FROM STDIN") as cp:
        for i in range(meters):
            estimated = i % 20 == 0
            cp.write_row((run[0], ids[i].decode(), first_day, first_day + timedelta(days=30), float(base[i] * 30),
                          "ESTIMATED" if estimated else "ACTUAL", "interpolation" if estimated else "",
                          ["gap_filled"] if estimated else []))
    conn.commit()
    echo(f"district_daily, meter_last_heard, alerts, dead letters, billing results in {time.perf_counter() - t0:.1f} s")

    # the flows' incremental refresh after an hourly rollup run: one day window, night flow included
    t0 = time.perf_counter()
    q.refresh_dashboards(conn, now - timedelta(days=1), now)
    conn.commit()
    echo(f"refresh_dashboards (1-day window, {meters:,} meters): {time.perf_counter() - t0:.2f} s")

    t0 = time.perf_counter()
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE")
    conn.autocommit = False
    echo(f"vacuum analyze in {time.perf_counter() - t0:.1f} s")
    return now


def run_queries(conn: psycopg.Connection, now: datetime, meters: int, districts: int, runs: int,
                echo: Callable[[str], None], seed: int = 8) -> tuple[list[Result], list[Result]]:
    rnd = random.Random(seed)
    tz = q.rollup_timezone(conn)
    today = now.astimezone(ZoneInfo(tz)).date()

    def meter() -> str:
        return f"{rnd.randrange(meters):08d}"

    def customer() -> list[str]:
        return q.customer_meters(conn, f"C{rnd.randrange(meters // 2):07d}")

    def some_districts(k: int) -> list[str]:
        return [f"DMA-{d:02d}" for d in rnd.sample(range(districts), min(k, districts))]

    d60 = today - timedelta(days=60)
    month0 = date(today.year - 1, today.month, 1)
    hour_end = now.replace(minute=0, second=0, microsecond=0)
    baseline: dict[str, Callable[[], Any]] = {
        "SELECT 1 round trip": lambda: conn.execute("SELECT 1").fetchone(),
        "meters primary-key lookup": lambda: conn.execute("SELECT * FROM meters WHERE meter_id = %s",
                                                          (meter(),)).fetchone(),
    }
    charts: dict[str, Callable[[], Any]] = {
        "coverage_by_district": lambda: q.coverage_by_district(conn, now),
        "coverage_by_gateway": lambda: q.coverage_by_gateway(conn, now),
        "freshness": lambda: q.freshness(conn, now),
        "open_alerts_by_kind": lambda: q.open_alerts_by_kind(conn, now),
        "open_alerts (top 50)": lambda: q.open_alerts(conn, now, 50),
        "top_districts (60 d)": lambda: q.top_districts(conn, d60, today, 6),
        "district_daily (6 DMAs, 60 d)": lambda: q.district_daily(conn, some_districts(6), d60, today),
        "district_daily (1 DMA, 365 d)": lambda: q.district_daily(conn, some_districts(1),
                                                                  today - timedelta(days=365), today),
        "verification_due (90 d)": lambda: q.verification_due(conn, now, 90, 100),
        "verification_by_week": lambda: q.verification_by_week(conn, now, 90),
        "dead_letters_by_reason": lambda: q.dead_letters_by_reason(conn, now),
        "meter_info": lambda: q.meter_info(conn, meter()),
        "meter_daily (90 d)": lambda: q.meter_daily(conn, meter(), today - timedelta(days=89),
                                                    today + timedelta(days=1), tz),
        "meter_daily (365 d)": lambda: q.meter_daily(conn, meter(), today - timedelta(days=364),
                                                     today + timedelta(days=1), tz),
        "meter_hourly (7 d)": lambda: q.meter_hourly(conn, meter(), hour_end - timedelta(days=7), hour_end),
        "meter_alerts": lambda: q.meter_alerts(conn, meter(), now - timedelta(days=90), now),
        "meter_vee_flags": lambda: q.meter_vee_flags(conn, meter(), today - timedelta(days=365), today),
        "customer_daily (30 d + previous 30 d)": lambda: q.customer_daily(conn, customer(),
                                                                          today - timedelta(days=59),
                                                                          today + timedelta(days=1)),
        "customer_monthly (24 months)": lambda: q.customer_monthly(conn, customer(), month0.replace(
            year=month0.year - 1), today + timedelta(days=1)),
        "leak_status": lambda: q.leak_status(conn, customer(), now),
    }
    base = [Result(name, *timed(fn, runs)) for name, fn in baseline.items()]
    results = []
    for name, fn in charts.items():
        results.append(Result(name, *timed(fn, runs)))
        conn.rollback()
    return base, results


def scratch_name() -> str:
    return f"meterflow_bench_charts_{os.getpid()}"


@click.command("charts", epilog="Example: meterflow bench charts --meters 100000 --days 365 --runs 50")
@click.option("--meters", type=int, default=100_000, show_default=True, help="Fleet size.")
@click.option("--days", type=int, default=365, show_default=True, help="Days of daily rollups per meter.")
@click.option("--hourly-days", type=int, default=7, show_default=True, help="Days of hourly rollups per meter.")
@click.option("--districts", type=int, default=60, show_default=True, help="District metered areas.")
@click.option("--gateways", type=int, default=400, show_default=True)
@click.option("--runs", type=int, default=50, show_default=True, help="Runs of each query.")
@click.option("--keep", is_flag=True, help="Keep the scratch database (default: drop it at the end).")
@click.pass_obj
def bench_charts(settings: Settings, meters: int, days: int, hourly_days: int, districts: int, gateways: int,
                 runs: int, keep: bool) -> None:
    """Chart queries p50/p95 on a scratch fleet (binary COPY into the rollups), against an in-run baseline."""
    from bench.scratch import scratch_database
    from cli.embedded import database_dsn
    from storage.migrate import upgrade

    name = scratch_name()
    with scratch_database(database_dsn(settings), name, keep, click.echo) as dsn, psycopg.connect(dsn) as conn:
        click.echo(f"scratch database {name}: {meters:,} meters x {days} days of daily rollups")
        upgrade(conn, settings.timezone)  # the server's flavour
        click.echo(f"flavour: {flavor.current(conn)}")
        now = build(conn, meters, days, hourly_days, districts, gateways, settings.timezone, click.echo)
        base, results = run_queries(conn, now, meters, districts, runs, click.echo)
    ref = max(b.p95_ms for b in base)
    click.echo(f"\n{'query':<40} {'p50 ms':>8} {'p95 ms':>8} {'p95/baseline':>13}")
    for r in base:
        click.echo(f"{'baseline: ' + r.name:<40} {r.p50_ms:>8.2f} {r.p95_ms:>8.2f} {r.p95_ms / ref:>13.1f}")
    for r in results:
        click.echo(f"{r.name:<40} {r.p50_ms:>8.2f} {r.p95_ms:>8.2f} {r.p95_ms / ref:>13.1f}")
    worst = max(results, key=lambda r: r.p95_ms)
    click.echo(f"({runs} runs per query; baseline p95 {ref:.2f} ms; target p95 < 100 ms per chart query)")
    click.echo(f"charts: p95 {worst.p95_ms:.1f} ms (worst query {worst.name})")
