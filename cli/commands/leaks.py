"""`meterflow leaks detect|notify` and `meterflow eval leaks`."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import polars as pl

from meterflow.config import Settings


def _settings(ctx: click.Context) -> Settings:
    obj = ctx.find_root().obj
    if isinstance(obj, Settings):
        return obj
    from meterflow.config import load_settings

    return load_settings()


def _when(value: str | None, default: datetime) -> datetime:
    if not value:
        return default
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time such as 2026-06-01T00:00Z") from exc
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _progress(msg: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {msg}", err=True)


def read_input_file(path: str) -> pl.DataFrame:
    """A readings file for offline runs: parquet (meter_id, time, total_m3[, alarms]) or a DAIAD-style CSV."""
    from analytics.leaks.evaluate import read_daiad

    if path.endswith((".csv", ".csv.gz")):
        return read_daiad(path)
    df = pl.read_parquet(path)
    missing = {"meter_id", "time", "total_m3"} - set(df.columns)
    if missing:
        raise click.BadParameter(f"{path} lacks columns {sorted(missing)} (need meter_id, time, total_m3)")
    if df.schema["time"] == pl.Datetime("us") or df.schema["time"] == pl.Datetime("ns"):
        df = df.with_columns(pl.col("time").dt.replace_time_zone("UTC"))
    return df


def _print_detections(det: pl.DataFrame, as_json: bool) -> None:
    from analytics.leaks.detectors import to_json_rows

    rows = to_json_rows(det)
    if as_json:
        for r in rows:
            click.echo(json.dumps(r))
        return
    click.echo(f"{'meter_id':38} {'kind':22} {'severity':9} {'start':21} {'end':21} {'L/h':>8} {'m3':>8}")
    for r in rows:
        rate = "-" if r["rate_l_h"] is None else f"{r['rate_l_h']:.1f}"
        vol = "-" if r["volume_m3"] is None else f"{r['volume_m3']:.2f}"
        click.echo(f"{r['meter_id']!s:38} {r['kind']!s:22} {r['severity']!s:9} {r['start']!s:21} {r['end']!s:21}"
                   f" {rate:>8} {vol:>8}")
    click.echo(f"{len(rows)} detections", err=True)


@click.group(epilog="Example: meterflow leaks detect --from 2026-06-01 --to 2026-06-08 --json")
def leaks() -> None:
    """Leak and anomaly detection: continuous and night flow, bursts, backflow, stuck/silent meters, alarms."""


@leaks.command(epilog="Example: meterflow leaks detect --input readings.parquet --json > alerts.jsonl")
@click.option("--from", "start", help="window start, ISO 8601 (no offset = UTC); default: --to minus 7 days")
@click.option("--to", "end", help="window end, ISO 8601 (no offset = UTC); default: now")
@click.option("--input", "input_file", type=click.Path(exists=True, dir_okay=False),
              help="readings file instead of the database: parquet (meter_id, time, total_m3[, alarms]) or "
                   "a DAIAD-style CSV(.gz)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.option("--kind", "kinds", multiple=True, help="only these alert kinds (repeatable)")
@click.option("--store", is_flag=True, help="also apply the result to the alerts table (open/update/resolve)")
@click.pass_context
def detect(ctx: click.Context, start: str | None, end: str | None, input_file: str | None, as_json: bool,
           kinds: tuple[str, ...], store: bool) -> None:
    """Run every detector over a window and print the detections (meter_id, kind, start, end, rate_l_h,
    volume_m3, severity, detected_at)."""
    from analytics.leaks.detectors import detect_all

    s = _settings(ctx)
    cfg = s.leaks
    if input_file:
        _progress(f"reading {input_file}")
        data = read_input_file(input_file)
        t_max = data.get_column("time").max()
        to = _when(end, t_max + timedelta(seconds=1) if isinstance(t_max, datetime) else datetime.now(UTC))
        frm = _when(start, to - timedelta(days=7)) if start or end else data.get_column("time").min()
        assert isinstance(frm, datetime)
        data = data.filter((pl.col("time") >= frm - timedelta(days=cfg.history_days)) & (pl.col("time") < to))
        conn = None
    else:
        from cli.embedded import database_dsn
        from storage.alerts import load_input
        from storage.db import connect
        from storage.refresh import refresh_derived

        to = _when(end, datetime.now(UTC))
        frm = _when(start, to - timedelta(days=7))
        conn = connect(database_dsn(s))
        _progress("refreshing the rollups")
        refresh_derived(conn, frm - timedelta(days=cfg.history_days), to)
        data = load_input(conn, frm - timedelta(days=cfg.history_days), to)
    _progress(f"detecting on {data.height} rows of {data.get_column('meter_id').n_unique()} meters")
    det = detect_all(data, cfg, s.timezone, as_of=to)
    shown = det.filter((pl.col("end") > frm) & (pl.col("start") < to))
    if kinds:
        shown = shown.filter(pl.col("kind").is_in(list(kinds)))
    _print_detections(shown, as_json)
    if store:
        if conn is None:
            from cli.embedded import database_dsn
            from storage.db import connect

            conn = connect(database_dsn(s))
        from storage.alerts import sync

        meters = sorted(set(data.get_column("meter_id").to_list()))
        res = sync(conn, det, to, meters, cfg.active_slack_hours, s.timezone)
        _progress(f"alerts: {res.as_dict()}")
    if conn is not None:
        conn.close()


@leaks.command(epilog="Example: meterflow leaks notify --dry-run --webhook http://ops.example/hook")
@click.option("--dry-run", is_flag=True, help="compose and record the messages, send nothing")
@click.option("--webhook", help="webhook URL (default: leaks.notify.webhook_url)")
@click.option("--smtp", help="host:port of the SMTP server (default: leaks.notify.smtp_host/port)")
@click.option("--email-to", help="default e-mail recipient")
@click.option("--sms-url", help="HTTP SMS gateway URL")
@click.option("--sms-to", help="default phone number")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per attempt")
@click.pass_context
def notify(ctx: click.Context, dry_run: bool, webhook: str | None, smtp: str | None, email_to: str | None,
           sms_url: str | None, sms_to: str | None, as_json: bool) -> None:
    """Tell customers and operators about open alerts (rate-limited: once per alert and channel per
    leaks.notify.repeat_hours, at most leaks.notify.max_per_run per channel)."""
    from cli.embedded import database_dsn
    from notify.dispatch import channels_from_config, notify_open_alerts
    from storage.db import connect

    s = _settings(ctx)
    ncfg = s.leaks.notify.model_copy()
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
        raise click.UsageError("no channel configured: give --webhook, --smtp or --sms-url (or leaks.notify.*)")
    with connect(database_dsn(s)) as conn:
        outcomes = notify_open_alerts(conn, channels, ncfg, s.timezone, dry_run=dry_run)
    for o in outcomes:
        click.echo(json.dumps(o.as_dict()) if as_json else f"{o.channel:8} {o.status:13} {o.meter_id} {o.kind}"
                   f" {o.recipient} {o.error}".rstrip())
    _progress(f"{len(outcomes)} attempts")


@click.group("eval", epilog="Example: meterflow eval leaks --simulate --seed 7 --meters 2000 --days 60")
def eval_group() -> None:
    """Measure detector quality against ground truth (or alert rates on real, unlabelled data)."""


@eval_group.command("leaks", epilog="Example: meterflow eval leaks --truth truth.parquet --input readings.parquet "
                                    "--json")
@click.option("--truth", type=click.Path(exists=True, dir_okay=False),
              help="true events (parquet or CSV: meter_id, kind, start, end, rate_l_h); needs --input")
@click.option("--input", "input_file", type=click.Path(exists=True, dir_okay=False),
              help="the readings the truth belongs to (parquet meter_id, time, total_m3)")
@click.option("--simulate", is_flag=True, help="simulate the benchmark fleet (fixtures/leak_scenarios.py)")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--meters", type=int, default=2000, show_default=True)
@click.option("--days", type=int, default=60, show_default=True)
@click.option("--daiad", type=click.Path(exists=True, dir_okay=False),
              help="real unlabelled homes (DAIAD CSV): alert rates and the top alerts")
@click.option("--top", type=int, default=10, show_default=True, help="top alerts listed for --daiad")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False), help="write alert timelines here")
@click.option("--json", "as_json", is_flag=True, help="the figures as one JSON object")
@click.pass_context
def eval_leaks(ctx: click.Context, truth: str | None, input_file: str | None, simulate: bool, seed: int, meters: int,
               days: int, daiad: str | None, top: int, plot_dir: str | None, as_json: bool) -> None:
    """Precision, recall, median and p90 time to detection by leak size, and false alerts per 100
    meter-months; or, with --daiad, alert rates on real homes."""
    from analytics.leaks.detectors import detect_all
    from analytics.leaks.evaluate import DAYS_PER_MONTH, evaluate, format_report
    from analytics.leaks.hourly import hourly_use

    s = _settings(ctx)
    if daiad:
        _eval_daiad(daiad, s, top, plot_dir, as_json)
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
        raise click.UsageError("give --simulate, or --truth with --input, or --daiad")
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
    from analytics.leaks.plots import alert_timeline, write_figure

    picks: list[str] = []
    for kind, rate_lo in (("leak", 20.0), ("leak", 0.0), ("intermittent_leak", 0.0), ("irrigation", 0.0),
                          ("holiday", 0.0)):
        cand = truth.filter((pl.col("kind") == kind) & (pl.col("rate_l_h") >= rate_lo)
                            & ~pl.col("meter_id").is_in(picks)).sort("rate_l_h" if rate_lo == 0 else "start")
        if cand.height:
            picks.append(str(cand.get_column("meter_id")[0]))
    fig = alert_timeline(hourly, det, picks, "Simulated benchmark: hourly use, alerts (shaded) and true events (bar)",
                         truth)
    for p in write_figure(fig, out_dir, "leaks_timeline_simulated"):
        _progress(f"wrote {p}")


def _eval_daiad(path: str, s: Settings, top: int, plot_dir: str | None, as_json: bool) -> None:
    from analytics.leaks.detectors import detect_all, to_json_rows
    from analytics.leaks.evaluate import DAIAD_TZ, read_daiad, unlabelled_summary
    from analytics.leaks.hourly import hourly_use

    _progress(f"reading {path}")
    readings = read_daiad(path)
    hourly = hourly_use(readings)
    _progress(f"detecting on {readings.height} readings of {readings.get_column('meter_id').n_unique()} meters")
    det = detect_all(readings, s.leaks, DAIAD_TZ, hourly=hourly)
    summary: dict[str, Any] = unlabelled_summary(det, readings)
    leaks_only = det.filter(pl.col("kind").is_in(["continuous_flow", "night_flow", "burst"]))
    ranked = leaks_only.with_columns(
        ((pl.col("end") - pl.col("start")).dt.total_hours()).alias("hours")).sort("volume_m3", descending=True,
                                                                                 nulls_last=True)
    summary["top_alerts"] = to_json_rows(ranked.head(top))
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"DAIAD: {summary['meters']} meters, {summary['meter_months']} meter-months, "
                   f"{summary['readings']} readings")
        click.echo(f"{'alert kind':24} {'alerts':>7} {'meters':>7} {'per 100 meter-months':>21}")
        for k, v in summary["kinds"].items():
            click.echo(f"{k:24} {v['alerts']:>7} {v['meters']:>7} {v['per_100_meter_months']:>21}")
        click.echo("\ntop alerts by volume:")
        _print_detections(ranked.head(top), False)
    if plot_dir:
        from analytics.leaks.plots import alert_timeline, write_figure

        picks = list(dict.fromkeys(ranked.get_column("meter_id").to_list()))[:4]
        fig = alert_timeline(hourly, det, picks, "DAIAD trial A (real homes): hourly use and alerts (shaded)")
        for p in write_figure(fig, plot_dir, "leaks_timeline_daiad"):
            _progress(f"wrote {p}")
    sys.stdout.flush()


def _add_interruptions_eval() -> None:
    """`meterflow eval interruptions` lives with the interruptions commands."""
    from cli.commands.interruptions import eval_interruptions

    eval_group.add_command(eval_interruptions)


_add_interruptions_eval()
