"""`meterflow bench ...`: benchmarks with a stable last line, figures as ratios to an in-run baseline."""

from __future__ import annotations

import click

from meterflow.cli import LazyGroup

BENCHES: dict[str, str] = {
    "decode": "meterflow.commands.decode:bench_decode",
    "ingest": "meterflow.commands.decoder:bench_ingest",
    "billing": "meterflow.commands.billing:bench_billing",
    "charts": "meterflow.commands.serve:bench_charts",
    "gateway": "meterflow.commands.gateway:bench_gateway",
}


@click.group(cls=LazyGroup, lazy=BENCHES, epilog="Example: meterflow bench decode --meters 10000")
def bench() -> None:
    """Benchmarks; each prints its figure as the last line of output."""
