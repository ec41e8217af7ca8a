"""`meterflow leaks detect|notify` and `meterflow eval leaks`."""

from __future__ import annotations

import csv
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click
import polars as pl

from meterflow.config import Settings


def _settings(ctx: click.Context) -> Settings:
    obj = ctx.find_root().obj
    if isinstance(obj, Settings):
        return obj
    from meterflow.config import load_settings

    return load_settings()


def _when(value: str | None, tz: str) -> datetime | None:
    """An ISO 8601 date or time; without an offset it is local time in `tz` (settings.timezone)."""
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 date or time such as 2026-06-01 or "
                                 "2026-06-01T00:00+02:00") from exc
    return (t.replace(tzinfo=ZoneInfo(tz)) if t.tzinfo is None else t).astimezone(UTC)


def _progress(msg: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {msg}", err=True)


def read_input_file(path: str) -> pl.DataFrame:
    """A readings file for offline runs: parquet (meter_id, time, total_m3[, alarms]) or a DAIAD-style CSV."""
    from decoders.csv_readings import read_frame

    if path.endswith((".csv", ".csv.gz")):
        return read_frame(path, "daiad")
    df = pl.read_parquet(path)
    missing = {"meter_id", "time", "total_m3"} - set(df.columns)
    if missing:
        raise click.BadParameter(f"{path} lacks columns {sorted(missing)} (need meter_id, time, total_m3)")
    if df.schema["time"] == pl.Datetime("us") or df.schema["time"] == pl.Datetime("ns"):
        df = df.with_columns(pl.col("time").dt.replace_time_zone("UTC"))
    return df


TABLE_COLUMNS = ("meter_id", "kind", "severity", "state", "start", "end", "rate_l_h", "volume_m3", "close_reason")


def _print_rows(rows: list[dict[str, Any]], fmt: str) -> None:
    """Rows as JSON lines, CSV or an aligned table (times already ISO 8601 with offsets)."""
    if fmt == "json":
        for r in rows:
            click.echo(json.dumps(r, default=str))
        return
    cols = [c for c in TABLE_COLUMNS if not rows or c in rows[0]] + (
        [c for c in rows[0] if c not in TABLE_COLUMNS and c != "details" and c != "message"] if rows else [])
    if fmt == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
        return
    widths = {c: max([len(c), *(len(_cell(r.get(c))) for r in rows)]) for c in cols}
    click.echo("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        click.echo("  ".join(_cell(r.get(c)).ljust(widths[c]) for c in cols).rstrip())


def _cell(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".")
    return str(v)


@click.group(epilog="Example: meterflow leaks list --open --format table")
def leaks() -> None:
    """Leak incidents and anomalies: leaks (continuous and night flow, leak alarms), bursts, backflow, stuck and
    silent meters, meter alarms."""


@leaks.command(epilog="Example: meterflow leaks detect --from 2016-06-01 --to 2016-07-01 --json")
@click.option("--from", "start", help="window start (inclusive), ISO 8601; no offset = settings.timezone; "
                                      "default: the first reading")
@click.option("--to", "end", help="window end (exclusive), ISO 8601; no offset = settings.timezone; "
                                  "default: just after the last reading")
@click.option("--input", "input_file", type=click.Path(exists=True, dir_okay=False),
              help="readings file instead of the database: parquet (meter_id, time, total_m3[, alarms]) or "
                   "a DAIAD-style CSV(.gz)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line (same as --format json)")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--kind", "kinds", multiple=True, help="only these kinds (repeatable): leak, burst, backflow, ...")
@click.option("--min-severity", type=click.Choice(["info", "warning", "critical"]), default="warning",
              show_default=True, help="info also shows the silent meters")
@click.option("--store/--no-store", default=True, show_default=True,
              help="store the incidents in the alerts table (database mode)")
@click.pass_context
def detect(ctx: click.Context, start: str | None, end: str | None, input_file: str | None, as_json: bool, fmt: str,
           kinds: tuple[str, ...], min_severity: str, store: bool) -> None:
    """Find the incidents of a window, open or closed (meter_id, kind, severity, state, start, end, detected_at,
    rate_l_h, volume_m3, close_reason), and store them. Times are printed with the offset of settings.timezone."""
    from analytics.leaks.detectors import alerts_only, detect_all, to_json_rows

    s = _settings(ctx)
    frm, to = _when(start, s.timezone), _when(end, s.timezone)
    if input_file:
        _progress(f"reading {input_file}")
        data = read_input_file(input_file)
        if data.is_empty():
            raise click.ClickException(f"{input_file} holds no readings")
        first, last = data.get_column("time").min(), data.get_column("time").max()
        assert isinstance(first, datetime) and isinstance(last, datetime)
        to = to or last + timedelta(seconds=1)
        frm = frm or first
        data = data.filter(pl.col("time") < to)  # all the history the file has: incidents keep their true start
        det = detect_all(data, s.leaks, s.timezone, as_of=to)
        det = det.filter((pl.col("end") > frm) & (pl.col("start") < to))
    else:
        from cli.embedded import database_dsn
        from pipelines.leaks import run_detection
        from storage.alerts import data_span
        from storage.db import connect

        with connect(database_dsn(s)) as conn:
            span = data_span(conn)
            if span is None:
                raise click.ClickException("no readings in the database")
            to = to or span[1] + timedelta(seconds=1)
            frm = frm or span[0]
            _progress(f"detecting {frm.isoformat()} to {to.isoformat()}")
            run = run_detection(conn, s, to, frm, store=store)
        det = run.detections
        _progress(f"{run.meters} meters; stored: {run.stored}")
    det = alerts_only(det, min_severity)
    if kinds:
        det = det.filter(pl.col("kind").is_in(list(kinds)))
    _print_rows(to_json_rows(det.sort("start"), s.timezone), "json" if as_json else fmt)
    _progress(f"{det.height} incidents")


@leaks.command("list", epilog="Example: meterflow leaks list --open --district North --format csv")
@click.option("--open", "state", flag_value="open", help="only open incidents")
@click.option("--closed", "state", flag_value="closed", help="only closed incidents")
@click.option("--district", help="only meters of this district (registry)")
@click.option("--kind", "kinds", multiple=True, help="only these kinds (repeatable): leak, burst, backflow, ...")
@click.option("--since", help="only incidents still open or ended at or after this time (ISO 8601; no offset = "
                              "settings.timezone)")
@click.option("--min-severity", type=click.Choice(["info", "warning", "critical"]), default="warning",
              show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--limit", type=int, default=None, help="at most this many (newest first)")
@click.pass_context
def list_cmd(ctx: click.Context, state: str | None, district: str | None, kinds: tuple[str, ...], since: str | None,
             min_severity: str, fmt: str, limit: int | None) -> None:
    """The stored incidents, open first then newest (times with the offset of settings.timezone)."""
    from cli.embedded import database_dsn
    from storage.alerts import list_incidents
    from storage.db import connect

    s = _settings(ctx)
    zone = ZoneInfo(s.timezone)
    with connect(database_dsn(s)) as conn:
        rows = list_incidents(conn, state=state, district=district, kinds=list(kinds) or None,
                              since=_when(since, s.timezone), min_severity=min_severity, limit=limit)
    out = []
    for r in rows:
        out.append({"id": r["id"], "meter_id": r["meter_id"], "district": r["district"], "kind": r["kind"],
                    "severity": r["severity"], "state": r["state"],
                    "start": r["first_seen"].astimezone(zone).isoformat(),
                    "end": r["last_seen"].astimezone(zone).isoformat(),
                    "rate_l_h": None if r["rate_l_h"] is None else round(r["rate_l_h"], 3),
                    "volume_m3": None if r["volume_m3"] is None else round(r["volume_m3"], 3),
                    "detected_at": r["detected_at"].astimezone(zone).isoformat() if r["detected_at"] else None,
                    "close_reason": r["close_reason"], "closed_by": r["closed_by"],
                    "closed_at": r["resolved_at"].astimezone(zone).isoformat() if r["resolved_at"] else None})
    _print_rows(out, fmt)
    _progress(f"{len(out)} incidents")


@leaks.command(epilog="Example: meterflow leaks notify --dry-run --webhook http://ops.example/hook")
@click.option("--dry-run", is_flag=True, help="compose and record the messages, send nothing")
@click.option("--webhook", help="webhook URL (default: notify.webhook_url)")
@click.option("--smtp", help="host:port of the SMTP server (default: notify.smtp_host/port)")
@click.option("--email-to", help="default e-mail recipient")
@click.option("--sms-url", help="HTTP SMS gateway URL")
@click.option("--sms-to", help="default phone number")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per attempt")
@click.pass_context
def notify(ctx: click.Context, dry_run: bool, webhook: str | None, smtp: str | None, email_to: str | None,
           sms_url: str | None, sms_to: str | None, as_json: bool) -> None:
    """Tell customers and operators about open alerts (rate-limited: once per alert and channel per
    notify.repeat_hours, at most notify.max_per_run per channel); warning and above only."""
    from cli.embedded import database_dsn
    from notify.dispatch import channels_from_config, notify_open_alerts
    from storage.db import connect

    s = _settings(ctx)
    ncfg = s.notify.model_copy()
    if webhook:
        ncfg.webhook_url = webhook
    if smtp:
        host, _, port = smtp.partition(":")
        ncfg.smtp_host, ncfg.smtp_port = host, int(port or 25)
    if email_to:
        ncfg.email_to = email_to
    if sms_url:
        ncfg.sms_url = sms_url
    if sms_to:
        ncfg.sms_to = sms_to
    channels = channels_from_config(ncfg)
    if not channels:
        raise click.UsageError("no channel configured: give --webhook, --smtp or --sms-url (or notify.*)")
    with connect(database_dsn(s)) as conn:
        outcomes = notify_open_alerts(conn, channels, ncfg, s.timezone, dry_run=dry_run)
    for o in outcomes:
        click.echo(json.dumps(o.as_dict()) if as_json else f"{o.channel:8} {o.status:13} {o.meter_id} {o.kind}"
                   f" {o.recipient} {o.error}".rstrip())
    _progress(f"{len(outcomes)} attempts")


@click.group("eval", epilog="Example: meterflow eval leaks --simulate --seed 7 --meters 2000 --days 60")
def eval_group() -> None:
    """Measure detector quality against ground truth (or alert rates on real, unlabelled data)."""


@eval_group.command("leaks",
                    epilog="Example: meterflow eval leaks --daiad ../shared/data/daiad/swm_trialA_public.csv.gz")
@click.option("--daiad", type=click.Path(exists=True, dir_okay=False),
              help="real homes (DAIAD CSV): leaks injected into their real indexes, meterflow against the vendor rule")
@click.option("--simulate", is_flag=True, help="simulate the benchmark fleet (fixtures/leak_scenarios.py)")
@click.option("--truth", type=click.Path(exists=True, dir_okay=False),
              help="true events (parquet or CSV: meter_id, kind, start, end, rate_l_h); needs --input")
@click.option("--input", "input_file", type=click.Path(exists=True, dir_okay=False),
              help="the readings the truth belongs to (parquet meter_id, time, total_m3)")
@click.option("--seed", type=int, default=7, show_default=True, help="seed of the injected or simulated leaks")
@click.option("--meters", type=int, default=2000, show_default=True, help="simulated meters")
@click.option("--days", type=int, default=60, show_default=True, help="simulated days")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False), help="write alert timelines here")
@click.option("--json", "as_json", is_flag=True, help="the figures as one JSON object")
@click.pass_context
def eval_leaks(ctx: click.Context, daiad: str | None, simulate: bool, truth: str | None, input_file: str | None,
               seed: int, meters: int, days: int, plot_dir: str | None, as_json: bool) -> None:
    """Recall by leak size, false alerts per 100 leak-free meter-months and median time to detection: on real
    homes with injected leaks side by side with the vendor rule (--daiad), or on the simulated fleet."""
    from analytics.leaks.detectors import detect_all
    from analytics.leaks.evaluate import DAYS_PER_MONTH, evaluate, format_report
    from analytics.leaks.hourly import hourly_use

    s = _settings(ctx)
    if daiad:
        _eval_real_homes(daiad, s, seed, plot_dir, as_json)
        return
    if simulate:
        from fixtures.leak_scenarios import benchmark_fleet

        _progress(f"simulating {meters} meters x {days} days (seed {seed})")
        fleet = benchmark_fleet(meters, days, seed)
        readings, truth_df, tz, n_meters, n_days = fleet.readings, fleet.truth, fleet.tz, meters, float(days)
    elif truth and input_file:
        readings = read_input_file(input_file)
        truth_df = _read_table(truth).with_columns(pl.col("start", "end").cast(pl.Datetime("us", "UTC")))
        tz = s.timezone
        n_meters = readings.get_column("meter_id").n_unique()
        span = readings.group_by("meter_id").agg((pl.col("time").max() - pl.col("time").min()).dt.total_hours())
        n_days = float(span.get_column("time").sum()) / 24.0 / max(n_meters, 1)
    else:
        raise click.UsageError("give --daiad, --simulate, or --truth with --input")
    _progress("hourly use")
    hourly = hourly_use(readings)
    _progress("detecting")
    det = detect_all(readings, s.leaks, tz, hourly=hourly)
    rep = evaluate(det, truth_df, n_meters, n_days)
    out = rep.as_dict()
    if simulate:
        out["seed"] = seed
    if as_json:
        click.echo(json.dumps(out))
    else:
        click.echo(format_report(rep))
        click.echo(f"(meter-months {n_meters * n_days / DAYS_PER_MONTH:.0f})", err=True)
    if plot_dir:
        _plot_simulated(hourly, det, truth_df, plot_dir)


def _read_table(path: str) -> pl.DataFrame:
    return pl.read_parquet(path) if path.endswith(".parquet") else pl.read_csv(path, try_parse_dates=True)


def _plot_simulated(hourly: pl.DataFrame, det: pl.DataFrame, truth: pl.DataFrame, out_dir: str) -> None:
    from dashboards.leak_timeline import alert_timeline, write_figure

    picks: list[str] = []
    for kind, rate_lo in (("leak", 20.0), ("leak", 0.0), ("intermittent_leak", 0.0), ("irrigation", 0.0),
                          ("holiday", 0.0)):
        cand = truth.filter((pl.col("kind") == kind) & (pl.col("rate_l_h") >= rate_lo)
                            & ~pl.col("meter_id").is_in(picks)).sort("rate_l_h" if rate_lo == 0 else "start")
        if cand.height:
            picks.append(str(cand.get_column("meter_id")[0]))
    fig = alert_timeline(hourly, det, picks,
                         "Simulated benchmark: hourly use, incidents (shaded) and true events (bar)", truth)
    for p in write_figure(fig, out_dir, "leaks_timeline_simulated"):
        _progress(f"wrote {p}")


def _eval_real_homes(path: str, s: Settings, seed: int, plot_dir: str | None, as_json: bool) -> None:
    from analytics.leaks.hourly import normalise_readings
    from analytics.leaks.realhomes import DAIAD_TZ, InjectionPlan, evaluate_real_homes, format_real_homes

    _progress(f"reading {path}")
    readings = normalise_readings(read_input_file(path))
    _progress(f"injecting leaks (seed {seed}) and detecting on {readings.height} readings")
    rep = evaluate_real_homes(readings, s.leaks, DAIAD_TZ, InjectionPlan(seed=seed))
    click.echo(json.dumps(rep) if as_json else format_real_homes(rep))
    if plot_dir:
        from analytics.leaks.detectors import detect_all
        from analytics.leaks.hourly import hourly_use
        from dashboards.leak_timeline import alert_timeline, write_figure

        det = detect_all(readings, s.leaks, DAIAD_TZ)
        leaks_only = det.filter(pl.col("kind") == "leak").sort("volume_m3", descending=True, nulls_last=True)
        picks = list(dict.fromkeys(leaks_only.get_column("meter_id").to_list()))[:4]
        fig = alert_timeline(hourly_use(readings), det, picks,
                             "DAIAD trial A (real homes, no injected leaks): hourly use and incidents (shaded)")
        for p in write_figure(fig, plot_dir, "leaks_timeline_daiad"):
            _progress(f"wrote {p}")
    sys.stdout.flush()


def _add_interruptions_eval() -> None:
    """`meterflow eval interruptions` lives with the interruptions commands."""
    from cli.commands.interruptions import eval_interruptions

    eval_group.add_command(eval_interruptions)


_add_interruptions_eval()
