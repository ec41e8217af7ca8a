"""`meterflow interruptions detect|list|plan|planned|subscribe|notify` and `meterflow eval interruptions`."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click

from meterflow.config import Settings


def _settings(ctx: click.Context) -> Settings:
    obj = ctx.find_root().obj
    if isinstance(obj, Settings):
        return obj
    from meterflow.config import load_settings

    return load_settings()


def parse_time(value: str, tz: str) -> datetime:
    """YYYY-MM-DD (local midnight) or an ISO time (no offset = the configured time zone) -> UTC."""
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            t = datetime(d.year, d.month, d.day)
        else:
            t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from exc
    return (t.replace(tzinfo=ZoneInfo(tz)) if t.tzinfo is None else t).astimezone(UTC)


def _period(start: str | None, end: str | None, period: str | None, tz: str) -> tuple[datetime, datetime]:
    if period:
        first = parse_time(f"{period}-01", tz)
        y, m = int(period[:4]), int(period[5:7])
        nxt = f"{y + (m == 12)}-{(m % 12) + 1:02d}-01"
        return first, parse_time(nxt, tz)
    to = parse_time(end, tz) if end else datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return (parse_time(start, tz) if start else to - timedelta(days=7)), to


def _progress(msg: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {msg}", err=True)


def _conn(s: Settings) -> Any:
    from cli.embedded import database_dsn
    from storage.db import connect

    return connect(database_dsn(s))


def _print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for r in rows:
            click.echo(json.dumps(r, default=str))
        return
    click.echo(f"{'kind':13} {'district':10} {'street':22} {'start':25} {'end':25} {'meters':>6}  cause")
    for r in rows:
        click.echo(f"{r['kind']:13} {r['district']!s:10} {r['street'] or '(whole district)':22} {r['start']!s:25} "
                   f"{r['end'] or 'ongoing'!s:25} {len(r['meters'] or []):>6}  {r['cause']}")
    click.echo(f"{len(rows)} interruptions", err=True)


@click.group(epilog="Example: meterflow interruptions detect --from 2026-06-01 --to 2026-06-08 --json")
def interruptions() -> None:
    """Supply interruptions seen from the meters, communication outages, planned works and street notices."""


@interruptions.command(epilog="Example: meterflow interruptions detect --from 2026-06-10 --to 2026-06-11 --json")
@click.option("--from", "start", help="first day or time (inclusive; no offset = the configured time zone)")
@click.option("--to", "end", help="day or time after the window (exclusive); default: now")
@click.option("--period", help="a month, YYYY-MM, instead of --from/--to")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.option("--store", is_flag=True, help="also apply the result to the interruptions table")
@click.pass_context
def detect(ctx: click.Context, start: str | None, end: str | None, period: str | None, as_json: bool,
           store: bool) -> None:
    """Find supply interruptions (collective standstill, dry alarms) and communication outages per
    district and street: district, street (street-level only), start, end (null while ongoing), meters,
    kind (supply | communication), cause, detected_at, score; times in the configured time zone."""
    import polars as pl

    from analytics.interruptions.detect import to_json_rows
    from pipelines.interruptions import detect_window

    s = _settings(ctx)
    frm, to = _period(start, end, period, s.timezone)
    with _conn(s) as conn:
        _progress(f"detecting {frm.isoformat()} .. {to.isoformat()}")
        det = detect_window(conn, s, frm, to)
        shown = det.filter(pl.col("end").is_null() | (pl.col("end") > frm)).filter(pl.col("start") < to)
        _print_rows(to_json_rows(shown, s.timezone), as_json)
        if store:
            from storage.interruptions import sync

            _progress(f"stored: {sync(conn, det.to_dicts(), to).as_dict()}")


@interruptions.command("list", epilog="Example: meterflow interruptions list --state open --json")
@click.option("--from", "start", help="first day or time (inclusive)")
@click.option("--to", "end", help="day or time after the window (exclusive)")
@click.option("--state", type=click.Choice(["open", "closed"]))
@click.option("--kind", type=click.Choice(["supply", "communication"]))
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@click.pass_context
def list_cmd(ctx: click.Context, start: str | None, end: str | None, state: str | None, kind: str | None,
             as_json: bool) -> None:
    """Stored interruptions (detected and planned), newest first."""
    from storage.interruptions import list_interruptions

    s = _settings(ctx)
    with _conn(s) as conn:
        rows = list_interruptions(conn, parse_time(start, s.timezone) if start else None,
                                  parse_time(end, s.timezone) if end else None, state, kind)
    _print_rows([stored_row(r, s.timezone) for r in rows], as_json)


def stored_row(r: dict[str, Any], tz: str) -> dict[str, Any]:
    """A stored interruption in the shape `detect --json` prints (plus id, state, planned works)."""
    zone = ZoneInfo(tz)

    def loc(t: datetime | None) -> str | None:
        return t.astimezone(zone).isoformat() if t else None

    return {"id": r["id"], "district": r["district"], "street": r["street"], "kind": r["kind"],
            "cause": r["cause"], "state": r["state"], "start": loc(r["start_at"]), "end": loc(r["end_at"]),
            "expected_end": loc(r["expected_end"]), "detected_at": loc(r["detected_at"]), "meters": r["meters"],
            "planned": r["planned_id"] is not None, "planned_note": r.get("planned_note")}


@interruptions.command(epilog="Example: meterflow interruptions plan --district DMA-01 --street 'Lipowa' "
                              "--from 2026-06-12T08:00 --to 2026-06-12T14:00 --note 'main replacement'")
@click.option("--district", required=True)
@click.option("--street", "streets", multiple=True, help="a street of the district (repeatable; none = all)")
@click.option("--from", "start", required=True, help="start of the works (no offset = configured time zone)")
@click.option("--to", "end", required=True, help="end of the works")
@click.option("--note", default="", help="what residents are told")
@click.pass_context
def plan(ctx: click.Context, district: str, streets: tuple[str, ...], start: str, end: str, note: str) -> None:
    """Enter planned works: shown and notified like detected interruptions while their window lasts."""
    from storage.interruptions import add_planned

    s = _settings(ctx)
    with _conn(s) as conn:
        try:
            wid = add_planned(conn, district, list(streets), parse_time(start, s.timezone),
                              parse_time(end, s.timezone), note, "cli")
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
    click.echo(f"planned works {wid} recorded")


@interruptions.command(epilog="Example: meterflow interruptions planned --json")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def planned(ctx: click.Context, as_json: bool) -> None:
    """Planned works that have not ended."""
    from storage.interruptions import list_planned

    s = _settings(ctx)
    with _conn(s) as conn:
        rows = list_planned(conn, datetime.now(UTC))
    for r in rows:
        click.echo(json.dumps(r, default=str) if as_json else
                   f"{r['id']:>5} {r['district']:10} {','.join(r['streets']) or '(whole district)':30} "
                   f"{r['starts_at']} .. {r['ends_at']}  {r['note']}")


@interruptions.command(epilog="Example: meterflow interruptions subscribe --street 'Lipowa' --phone +48600100200")
@click.option("--street", required=True)
@click.option("--phone")
@click.option("--email")
@click.pass_context
def subscribe(ctx: click.Context, street: str, phone: str | None, email: str | None) -> None:
    """Subscribe a phone number or e-mail address to notices about a street."""
    from storage.interruptions import subscribe as add

    s = _settings(ctx)
    with _conn(s) as conn:
        try:
            sid = add(conn, street, phone, email, "api", "cli")
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
    click.echo(f"subscription {sid}")


@interruptions.command(epilog="Example: meterflow interruptions notify --dry-run")
@click.option("--dry-run", is_flag=True, help="compose and record the notices, send nothing")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def notify(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Send each subscriber of an interrupted street one notice per change (channels: settings [notify])."""
    from notify.dispatch import channels_from_config
    from notify.interruption_notices import notify_interruptions
    from storage.interruptions import list_interruptions, subscribe_consenting, subscribers_of

    s = _settings(ctx)
    channels = channels_from_config(s.notify)
    with _conn(s) as conn:
        subscribe_consenting(conn)
        out = notify_interruptions(conn, channels, s.timezone, list_interruptions(conn, kind="supply"),
                                   lambda d, st: subscribers_of(conn, d, st), dry_run=dry_run,
                                   max_per_run=s.interruptions.notify_max_per_run)
    for o in out:
        click.echo(json.dumps(o.as_dict()) if as_json else
                   f"{o.interruption_id:>6} {o.phase:8} {o.channel:6} {o.status:12} {o.recipient} {o.error}".rstrip())
    _progress(f"{len(out)} notices")


@click.command("interruptions", epilog="Example: meterflow eval interruptions --daiad "
                                       "../shared/data/daiad/swm_trialA_public.csv.gz")
@click.option("--daiad", required=True, type=click.Path(exists=True, dir_okay=False),
              help="real homes: a DAIAD-style CSV(.gz)")
@click.option("--street-size", type=int, default=8, show_default=True, help="homes per street (2 per district)")
@click.option("--seed", type=int, default=1, show_default=True, help="grouping and injection of the first run")
@click.option("--repeat", type=int, default=3, show_default=True,
              help="runs with seeds seed, seed+1, ...: other groupings of the homes, other events; figures add up")
@click.option("--every-days", type=float, default=14.0, show_default=True, help="one event per district this often")
@click.option("--holidays", "holiday_country", default="ES", show_default=True,
              help="public holidays of the homes' country (DAIAD trial A: Spain)")
@click.option("--holidays-subdiv", "holiday_subdiv", default="VC", show_default=True,
              help="and region (DAIAD trial A: Valencian Community)")
@click.option("--causal", is_flag=True,
              help="as the hourly flow: each week detected with only interruptions.history_days before it as history")
@click.option("--json", "as_json", is_flag=True, help="the figures as one JSON object")
@click.pass_context
def eval_interruptions(ctx: click.Context, daiad: str, street_size: int, seed: int, repeat: int, every_days: float,
                       holiday_country: str, holiday_subdiv: str, causal: bool, as_json: bool) -> None:
    """Inject interruptions and communication outages into real homes; recall, delay and false interruptions
    per district-year of the detector and of the plain rule (baseline), in the same run."""
    from analytics.interruptions import evaluate as ev
    from analytics.interruptions.detect import detect_interruptions
    from analytics.leaks.hourly import normalise_readings
    from analytics.leaks.realhomes import DAIAD_TZ
    from decoders.csv_readings import read_frame

    s = _settings(ctx)
    _progress(f"reading {daiad}")
    readings = normalise_readings(read_frame(daiad, "daiad")).select("meter_id", "time", "total_m3")
    cfg = s.interruptions.model_copy(update={"holiday_country": holiday_country, "holiday_subdiv": holiday_subdiv})
    mine, plain, runs = [], [], []
    for k in range(repeat):
        premises = ev.make_districts(readings.get_column("meter_id").unique().to_list(), street_size, seed + k)
        truth = ev.plan_events(readings, premises, DAIAD_TZ, seed + k, every_days)
        data = ev.inject(readings, premises, truth)
        years = ev.district_years(data, premises)
        _progress(f"run {k + 1}/{repeat} (seed {seed + k}): {premises.height} homes in "
                  f"{premises.get_column('district').n_unique()} districts, {years:.2f} district-years, "
                  f"{truth.height} events injected")
        if causal:
            det, first = ev.detect_causal(data, premises, cfg, DAIAD_TZ, cfg.history_days)
            lo = data.get_column("time").min()
            assert isinstance(lo, datetime)
            n_districts = premises.get_column("district").n_unique()
            skipped = min((first - lo).total_seconds() / 86400 / 365.25, years / n_districts)
            years -= n_districts * skipped  # the first weeks, without history, are not scored
            truth = truth.filter(truth.get_column("start") >= first)
            plain_det = ev.plain_rule(data, premises, DAIAD_TZ)
            plain_det = plain_det.filter(plain_det.get_column("start") >= first)
        else:
            det = detect_interruptions(data, premises, cfg, DAIAD_TZ)
            plain_det = ev.plain_rule(data, premises, DAIAD_TZ)
        mine.append(ev.score("detector", det, truth, years))
        plain.append(ev.score("plain rule", plain_det, truth, years))
        runs.append({"seed": seed + k, "detector": mine[-1].as_dict(), "plain_rule": plain[-1].as_dict()})
    m, p = ev.combine(mine), ev.combine(plain)
    out = {"homes": readings.get_column("meter_id").n_unique(), "street_size": street_size, "seed": seed,
           "repeat": repeat, "causal": causal, "district_years": round(m.district_years, 2), "detector": m.as_dict(),
           "plain_rule": p.as_dict(), "runs": runs}
    if as_json:
        click.echo(json.dumps(out, default=str))
        return
    click.echo(f"{out['homes']} homes in districts of 2 streets of {street_size}, {repeat} groupings (seeds "
               f"{seed}..{seed + repeat - 1}), {out['district_years']} district-years; {m.interruptions} "
               f"interruptions ({m.street_events} street-level), {m.comm_events} communication outages injected")
    click.echo(f"{'method':12} {'recall':>7} {'street':>8} {'district':>9} {'median delay h':>15} "
               f"{'false/district-year':>20} {'comm found':>11} {'comm as supply':>15}")
    for r in (m, p):
        click.echo(f"{r.method:12} {r.recall:>7.3f} {r.street_found:>3}/{r.street_events:<4} "
                   f"{r.district_found:>4}/{r.district_events:<4} {r.median_delay_h!s:>15} "
                   f"{r.false_per_district_year:>20} {r.comm_found:>5}/{r.comm_events:<5} {r.comm_as_supply:>15}")
