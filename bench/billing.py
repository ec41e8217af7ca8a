"""`meterflow bench billing`: the VEE billing computation on a synthetic fleet vs a plain group-by."""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any

import click

from meterflow.config import Settings


def synthetic_fleet(meters: int, start: datetime, hours: int, seed: int = 6,
                    garden_share: float = 0.0) -> tuple[Any, Any]:
    """Hourly readings of `meters` main meters over `hours` hours (polars/numpy), with a little dirt, and a
    registry; `garden_share` of the main meters also get a garden sub-meter (role garden, id G<main>)."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    mains = [f"{i:08d}" for i in range(meters)]
    with_garden = [m for m, r in zip(mains, rng.random(meters), strict=True) if r < garden_share]
    gardens = [f"G{m}" for m in with_garden]
    ids = pl.Series([*mains, *gardens])
    meters = len(ids)
    use = rng.gamma(0.6, 0.012, size=(meters, hours + 1))  # m3 per hour
    use[:, 0] = 0.0
    use[len(mains):] *= 0.3  # a garden takes a fraction of what its house uses
    idx = rng.uniform(10, 5000, size=(meters, 1)) + np.cumsum(use, axis=1)
    t0_us = int(start.timestamp() * 1_000_000)
    times = np.tile(t0_us + np.arange(hours + 1, dtype=np.int64) * 3_600_000_000, meters)
    readings = pl.DataFrame({
        "meter_id": ids.gather(np.repeat(np.arange(meters), hours + 1)),
        "time": pl.Series(times).cast(pl.Datetime("us", "UTC")),
        "total_m3": idx.ravel(),
    })
    # realistic dirt: 0.5 % of reads lost (gaps) and a small backward step on 1 % of meters
    readings = readings.filter(pl.Series(rng.random(readings.height) > 0.005))
    readings = readings.with_columns(
        pl.when(pl.Series(rng.random(readings.height) < 0.01 / (hours + 1)))
        .then(pl.col("total_m3") - 0.002).otherwise(pl.col("total_m3")).alias("total_m3")
    )
    registry = pl.DataFrame({
        "meter_id": ids, "register_digits": np.full(meters, 5),
        "role": ["main"] * len(mains) + ["garden"] * len(gardens),
        "parent_meter_id": pl.Series([None] * len(mains) + with_garden, dtype=pl.String),
    })
    return readings, registry


@click.command("billing", epilog="Example: meterflow bench billing --meters 10000")
@click.option("--meters", default=10_000, show_default=True, help="Synthetic main meters (1 month of hourly reads).")
@click.option("--garden-share", default=0.2, show_default=True,
              help="Share of main meters with a garden sub-meter (sewage = main - garden).")
@click.pass_obj
def bench_billing(settings: Settings | None, meters: int, garden_share: float) -> None:
    """Billing computation over a synthetic fleet vs a plain group-by of the same frame (in-run baseline)."""
    from datetime import UTC

    import polars as pl

    from analytics.vee.config import VeeConfig
    from analytics.vee.core import compute_billing

    start = datetime(2024, 3, 1, tzinfo=UTC)
    t0 = time.perf_counter()
    readings, registry = synthetic_fleet(meters, start, 31 * 24, garden_share=garden_share)
    n_gardens = registry.height - meters
    click.echo(f"built {readings.height:,} readings of {meters:,} main meters and {n_gardens:,} garden sub-meters "
               f"in {time.perf_counter() - t0:.2f} s", err=True)
    t0 = time.perf_counter()
    base = readings.group_by("meter_id").agg(pl.col("total_m3").first(), pl.col("total_m3").last().alias("l"))
    baseline = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = compute_billing(readings, registry, date(2024, 3, 1), date(2024, 4, 1), VeeConfig(),
                          as_of=datetime(2024, 4, 2, tzinfo=UTC), timezone="UTC")
    elapsed = time.perf_counter() - t0
    assert out.results.height == registry.height == base.height, "every meter gets a result"
    water = dict(out.results.select("meter_id", "consumption_m3").iter_rows())
    both = sum(1 for g, m in registry.select("meter_id", "parent_meter_id").drop_nulls().iter_rows()
               if water[g] is not None and water[m] is not None)  # a meter ending without a read has no figure
    deducted = out.counts.get("GARDEN_DEDUCTED", 0)
    assert deducted == both, f"every garden is taken off its main meter ({deducted} of {both})"
    click.echo(f"baseline group-by first/last: {baseline:.3f} s; billing with VEE: {elapsed:.2f} s "
               f"(ratio {elapsed / max(baseline, 1e-9):.1f}x)")
    click.echo(f"phases (s): {out.timings}; flags/exceptions: {out.counts}")
    click.echo(f"billing: {meters} meters ({n_gardens} with a garden sub-meter) in {elapsed:.2f} s")
