"""`meterflow fleet simulate`: write a simulated meter fleet's frames, registry, keys and ground truth."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from fixtures.fleet import Fleet

EXAMPLE = "Example: meterflow fleet simulate --meters 1000 --days 30 --seed 1 --out out/fleet"


@click.group(epilog=EXAMPLE)
def fleet() -> None:
    """Simulated OMS water-meter fleets for the demo, benchmarks and leak-detection evaluation."""


@fleet.command("simulate", epilog=EXAMPLE)
@click.option("--meters", type=click.IntRange(1), default=1000, show_default=True, help="Premises (meters).")
@click.option("--days", type=click.IntRange(1), default=30, show_default=True, help="Simulated days.")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same bytes.")
@click.option("--start", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M"]), default="2026-06-01",
              show_default=True, help="First quarter-hour, UTC.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory to write (created).")
@click.option("--format", "fmt", type=click.Choice(["hex", "parquet"]), default="hex", show_default=True,
              help="frames.txt (`<unix_time> <rssi> <hex>` lines, read by decode and the gateway) or frames.parquet.")
@click.option("--gateways", type=click.IntRange(1), default=1, show_default=True,
              help="Gateways gw-01..gw-NN; with two or more, repeats arrive via a second gateway.")
@click.option("--leak-share", type=click.FloatRange(0, 1), default=0.05, show_default=True)
@click.option("--exchange-share", type=click.FloatRange(0, 1), default=0.02, show_default=True)
@click.option("--rollover-share", type=click.FloatRange(0, 1), default=0.01, show_default=True)
@click.option("--loss-rate", type=click.FloatRange(0, 1), default=0.01, show_default=True)
@click.option("--repeat-rate", type=click.FloatRange(0, 1), default=0.02, show_default=True)
@click.option("--intervals/--no-intervals", default=False, show_default=True,
              help="Also write truth/intervals.parquet (litres per meter and quarter-hour).")
@click.option("--interruptions", is_flag=True,
              help="In the last days: a street cut, a district cut and a communication outage (truth/events.csv).")
def simulate(meters: int, days: int, seed: int, start: datetime, out_dir: Path, fmt: str, gateways: int,
             leak_share: float, exchange_share: float, rollover_share: float, loss_rate: float,
             repeat_rate: float, intervals: bool, interruptions: bool) -> None:
    """Simulate N meters for D days and write frames, meters.csv, keys.csv and truth/."""
    from dataclasses import replace

    from fixtures.fleet import FleetConfig, build_fleet, default_area_events

    began = time.perf_counter()
    cfg = FleetConfig(meters=meters, days=days, seed=seed, start=start.replace(tzinfo=UTC),
                      leak_share=leak_share, exchange_share=exchange_share, rollover_share=rollover_share,
                      loss_rate=loss_rate, repeat_rate=repeat_rate)
    if interruptions:
        cfg = replace(cfg, area_events=default_area_events(cfg))
    built = build_fleet(cfg)
    truth_dir = out_dir / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    built.meters.drop("key_hex").write_csv(out_dir / "meters.csv")
    built.meters.select("meter_id", "key_hex").write_csv(out_dir / "keys.csv")
    truth = built.truth
    truth.readings.write_parquet(truth_dir / "readings.parquet")
    truth.events.write_csv(truth_dir / "events.csv")
    (truth_dir / "counts.json").write_text(json.dumps(truth.counts(), indent=2) + "\n")
    if intervals:
        built.intervals.write_parquet(truth_dir / "intervals.parquet")
    click.echo(f"fleet: {len(built.meters)} meters built in {time.perf_counter() - began:.1f} s", err=True)

    gateway_ids = tuple(f"gw-{i + 1:02d}" for i in range(gateways))
    written = _write_hex(built, gateway_ids, out_dir) if fmt == "hex" else _write_parquet(
        built, gateway_ids, out_dir)
    if written != truth.frames_emitted:
        raise click.ClickException(f"wrote {written} frames, truth says {truth.frames_emitted}")
    click.echo(f"fleet: {written} frames written to {out_dir} in {time.perf_counter() - began:.1f} s", err=True)


def _write_hex(built: Fleet, gateway_ids: tuple[str, ...], out_dir: Path) -> int:
    from ingest.frame_lines import format_frame_line

    total = built.truth.frames_emitted
    count = 0
    with (out_dir / "frames.txt").open("w", encoding="ascii") as out:
        for day, chunk in enumerate(built.iter_chunks(gateway_ids)):
            buf = chunk.data.tobytes()
            width = chunk.data.shape[1]
            lines = [format_frame_line(buf[i * width:i * width + n], t, r) + "\n"
                     for i, (t, r, n) in enumerate(zip(chunk.received_at.tolist(), chunk.rssi.tolist(),
                                                       chunk.lengths.tolist(), strict=True))]
            out.writelines(lines)
            count += len(lines)
            if day % 5 == 4:
                click.echo(f"fleet: {count}/{total} frames", err=True)
    return count


def _write_parquet(built: Fleet, gateway_ids: tuple[str, ...], out_dir: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    total = built.truth.frames_emitted
    schema = pa.schema([("received_at", pa.float64()), ("rssi", pa.int16()), ("gateway", pa.string()),
                        ("data", pa.binary())])
    count = 0
    with pq.ParquetWriter(out_dir / "frames.parquet", schema) as writer:
        for day, chunk in enumerate(built.iter_chunks(gateway_ids)):
            buf = chunk.data.tobytes()
            width = chunk.data.shape[1]
            data = [buf[i * width:i * width + n] for i, n in enumerate(chunk.lengths.tolist())]
            table = pa.table({
                "received_at": chunk.received_at,
                "rssi": chunk.rssi.astype("int16"),
                "gateway": [gateway_ids[g] for g in chunk.gateway.tolist()],
                "data": pa.array(data, type=pa.binary()),
            }, schema=schema)
            writer.write_table(table)
            count += len(data)
            if day % 5 == 4:
                click.echo(f"fleet: {count}/{total} frames", err=True)
    return count
