"""`meterflow demo`: radio to chart in one command."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from meterflow.config import Settings, mask_url


@click.command(epilog="Example: meterflow demo --meters 200 --days 30   # smaller and faster")
@click.option("--meters", default=1000, show_default=True, help="simulated meters")
@click.option("--days", default=30, show_default=True, help="simulated days (one telegram per meter every 15 min)")
@click.option("--seed", default=1, show_default=True, help="random seed (same seed, same fleet)")
@click.option("--gateways", default=2, show_default=True,
              help="simulated gateways; with two, repeated telegrams arrive via both and the decoder deduplicates")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where the page and ground truth go (default: <data_dir>/demo)")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.pass_obj
def demo(settings: Settings, meters: int, days: int, seed: int, gateways: int, out_dir: Path | None,
         as_json: bool) -> None:
    """Simulate a fleet and run it through gateway, MQTT, decoder, database and a Prefect flow to a chart.

    Uses METERFLOW_DATABASE_URL / METERFLOW_MQTT__URL when set; otherwise an embedded PostgreSQL
    (data under .meterflow/) and an in-process MQTT broker. The demo works in its own database,
    meterflow_demo, which it recreates on each run.
    """
    _prepare_prefect(settings.data_dir)
    from cli.demo import run_demo  # imports Prefect: only after its home exists

    t0 = time.perf_counter()
    result = run_demo(settings, meters, days, seed, gateways, out_dir or settings.data_dir / "demo")
    elapsed = round(time.perf_counter() - t0, 1)
    if as_json:
        click.echo(json.dumps({"counts": result.counts, "truth": result.truth, "timings_s": result.timings,
                               "elapsed_s": elapsed, "report": str(result.report),
                               "customer_link": result.customer_link, "matches_truth": result.matches_truth,
                               "interruptions": result.interruptions}, indent=2, default=str))
    else:
        c, t = result.counts, result.truth
        click.echo(f"frames sent         {c['frames_sent']:>10}  (truth: {t['frames_emitted']} emitted, "
                   f"{t['telegrams_lost']} lost on purpose, {t['telegrams_repeated']} repeated)")
        click.echo(f"readings stored     {c['readings_stored']:>10}  (truth: {t['expected_distinct_readings']} "
                   f"distinct readings)")
        click.echo(f"duplicates dropped  {c['duplicates_dropped'] + c['suppressed_by_gateways']:>10}")
        click.echo(f"dead letters        {c['dead_letters']:>10}")
        click.echo(f"inlet readings      {c.get('inlet_readings', 0):>10}  (district inlet meters over Modbus; "
                   "/dashboards/balance shows DMA-02's network leak)")
        click.echo("every telegram not deliberately dropped stored exactly once: "
                   + ("yes" if result.matches_truth else "NO"))
        for i in result.interruptions:
            where = f"{i['district']} {i['street'] or '(whole district)'}"
            click.echo(f"interruption        {i['kind']:13} {i['cause']:10} {where:24} {i['start_at']:%m-%d %H:%M}-"
                       f"{i['end_at']:%H:%M} UTC (truth {i['true_start']:%H:%M}-{i['true_end']:%H:%M})"
                       if i["end_at"] and i["true_start"] else f"interruption        {i['kind']} {where} (no truth)")
        click.echo(f"chart page          {result.report.resolve() if result.report else '-'}")
        click.echo(f"database            {mask_url(result.dsn)}")
        click.echo(f"took                {elapsed} s")
        if result.customer_link:
            click.echo(f"customer page       {result.customer_link}")  # last: `meterflow serve` opens it
    if not result.matches_truth:
        sys.exit(1)


def _prepare_prefect(data_dir: Path) -> None:
    """Give the demo a private Prefect home (so concurrent tools don't lock it) and create it before Prefect
    is imported: Prefect reads its settings once, at import, and a missing home breaks its temporary server."""
    import os

    home = Path(os.environ.setdefault("PREFECT_HOME", str((data_dir / "prefect").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
