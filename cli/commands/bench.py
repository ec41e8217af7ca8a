"""`meterflow bench ...`: benchmarks with a stable last line, figures as ratios to an in-run baseline."""

from __future__ import annotations

import click

from cli.main import LazyGroup

BENCHES: dict[str, str] = {
    "decode": "cli.commands.decode:bench_decode",
    "ingest": "cli.commands.decoder:bench_ingest",
    "billing": "cli.commands.billing:bench_billing",
    "charts": "cli.commands.serve:bench_charts",
    "gateway": "cli.commands.gateway:bench_gateway",
    "pages": "bench.pages:bench_pages",
}


@click.group(cls=LazyGroup, lazy=BENCHES, epilog="Example: meterflow bench decode --meters 10000")
def bench() -> None:
    """Benchmarks; each prints its figure as the last line of output."""
