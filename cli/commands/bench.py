"""`meterflow bench ...`: benchmarks with a stable last line, figures as ratios to an in-run baseline.

The benchmarks live in the `bench/` package, one module per benchmark; this table is its only importer."""

from __future__ import annotations

import click

from cli.main import LazyGroup

BENCHES: dict[str, str] = {
    "decode": "bench.decode:bench_decode",
    "ingest": "bench.ingest:bench_ingest",
    "billing": "bench.billing:bench_billing",
    "charts": "bench.charts:bench_charts",
    "gateway": "bench.gateway:bench_gateway",
    "pages": "bench.pages:bench_pages",
    "storage": "bench.storage:bench_storage",
}


@click.group(cls=LazyGroup, lazy=BENCHES, epilog="Example: meterflow bench decode --meters 10000")
def bench() -> None:
    """Benchmarks; each prints its figure as the last line of output."""
