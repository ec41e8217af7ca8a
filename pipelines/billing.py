"""Prefect flow `billing-period`: billing consumption for one period, one task per meter-range chunk.

Thin by design: storage.billing loads and stores, analytics.vee.core.compute_billing computes.
Run by hand:     meterflow billing run --from 2024-03-01 --to 2024-04-01
Scheduled:       meterflow billing serve            (monthly cron, previous calendar month)
Several workers: the chunks are independent tasks; with a Prefect work pool each chunk can run elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

from analytics.vee.core import compute_billing
from meterflow.config import Settings, load_settings
from meterflow.logs import ctx, get_logger
from meterflow.periods import previous_month
from storage import billing as store
from storage.db import connect, resolve_dsn

log = get_logger(__name__)
DEFAULT_CHUNK = 2000
MONTHLY_CRON = "0 3 2 * *"  # 03:00 on the 2nd: the previous month, once late reads of the 1st are in


def compute_chunk(
    dsn: str, settings: Settings, run_id: int, period_start: date, period_end: date,
    meter_range: tuple[str, str] | None, as_of: datetime | None = None,
) -> dict[str, int]:
    """Load one meter range, compute, store; returns the chunk's counts (meters, results, flags...)."""
    with connect(dsn) as conn:
        inputs = store.load_inputs(conn, period_start, period_end, settings.vee, settings.timezone, meter_range)
        out = compute_billing(inputs["readings"], inputs["registry"], period_start, period_end, settings.vee,
                              history=inputs["history"], tariffs=inputs["tariffs"], as_of=as_of,
                              timezone=settings.timezone)
        store.save_output(conn, run_id, out)
    counts = dict(out.counts)
    counts["meters"] = inputs["registry"].height
    counts["results"] = out.results.height
    counts["with_exceptions"] = int((out.results["exceptions"].list.len() > 0).sum())
    return counts


ChunkRunner = Callable[[str, Settings, int, date, date, Sequence[tuple[str, str] | None], datetime | None],
                      Iterable[dict[str, int]]]


def _chunks_in_process(dsn: str, settings: Settings, run_id: int, period_start: date, period_end: date,
                       ranges: Sequence[tuple[str, str] | None], as_of: datetime | None) -> Iterator[dict[str, int]]:
    for rng in ranges:
        yield compute_chunk(dsn, settings, run_id, period_start, period_end, rng, as_of)


def run_billing(
    settings: Settings, period_start: date, period_end: date, *, chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[int, int], None] | None = None, as_of: datetime | None = None,
    run_chunks: ChunkRunner = _chunks_in_process,
) -> tuple[int, dict[str, int]]:
    """One billing run: open it, compute every meter-range chunk, close it as finished or failed.

    `run_chunks` decides where chunks run: in this process (the CLI) or as Prefect tasks (the flow)."""
    if period_end <= period_start:
        raise ValueError(f"--to {period_end} must be after --from {period_start}")
    dsn = resolve_dsn(settings)
    with connect(dsn) as conn:
        run_id = store.start_run(conn, period_start, period_end, settings.vee)
        ranges = store.meter_ranges(conn, chunk_size)
    totals: dict[str, int] = {}
    try:
        for i, counts in enumerate(run_chunks(dsn, settings, run_id, period_start, period_end, ranges, as_of)):
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v
            if progress:
                progress(i + 1, len(ranges))
    except BaseException:
        with connect(dsn) as conn:
            store.finish_run(conn, run_id, "failed")
        raise
    with connect(dsn) as conn:
        store.finish_run(conn, run_id)
    log.info("billing run finished", extra=ctx(run_id=run_id, period_start=str(period_start),
                                               period_end=str(period_end), **totals))
    return run_id, totals


def _build_flow() -> dict[str, Any]:
    """Prefect objects, built on first use so `meterflow billing run` does not pay for importing Prefect."""
    from prefect import flow, task
    from prefect.cache_policies import NONE

    @task(name="billing-chunk", retries=1, retry_delay_seconds=10, cache_policy=NONE)
    def billing_chunk(
        dsn: str, settings: Settings, run_id: int, period_start: date, period_end: date,
        meter_range: tuple[str, str] | None, as_of: datetime | None = None,
    ) -> dict[str, int]:
        return compute_chunk(dsn, settings, run_id, period_start, period_end, meter_range, as_of)


    @flow(name="billing-period", log_prints=True)
    def billing_period(
        period_start: date | None = None, period_end: date | None = None, chunk_size: int = DEFAULT_CHUNK
    ) -> dict[str, int]:
        """Billing consumption of every meter for [period_start, period_end) (default: the previous month)."""
        if period_start is None or period_end is None:
            period_start, period_end = previous_month()
        def as_tasks(dsn: str, settings: Settings, run_id: int, start: date, end: date,
                     ranges: Sequence[tuple[str, str] | None], as_of: datetime | None) -> Iterator[dict[str, int]]:
            futures = [billing_chunk.submit(dsn, settings, run_id, start, end, r, as_of) for r in ranges]
            return (f.result() for f in futures)

        run_id, counts = run_billing(load_settings(), period_start, period_end, chunk_size=chunk_size,
                                     run_chunks=as_tasks)
        totals = {"run_id": run_id, **counts}
        print(f"billing run {run_id}: {totals}")
        return totals

    # entrypoints (pipelines/billing.py:billing_period) resolve through the module __getattr__ below
    billing_period.fn.__qualname__ = "billing_period"
    billing_chunk.fn.__qualname__ = "billing_chunk"
    return {"billing_period": billing_period, "billing_chunk": billing_chunk}


_PREFECT: dict[str, Any] = {}


def __getattr__(name: str) -> Any:  # PEP 562: pipelines.billing.billing_period / billing_chunk
    if name in ("billing_period", "billing_chunk"):
        if not _PREFECT:
            _PREFECT.update(_build_flow())
        return _PREFECT[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def deployment(cron: str = MONTHLY_CRON, name: str = "monthly", timezone: str = "UTC") -> Any:
    """The billing-period deployment with its monthly schedule (cron in the utility's local time)."""
    from prefect.schedules import Cron

    flow_obj = __getattr__("billing_period")
    return flow_obj.to_deployment(name=name, schedules=[Cron(cron, timezone=timezone)], tags=["billing"])


def serve(cron: str = MONTHLY_CRON, name: str = "monthly", timezone: str = "UTC") -> None:
    """Serve the deployment (blocks; uses PREFECT_API_URL, else a temporary local server)."""
    from prefect import serve as prefect_serve

    prefect_serve(deployment(cron, name, timezone))


if __name__ == "__main__":  # by hand: python -m pipelines.billing [FROM TO]
    import sys

    run_flow = __getattr__("billing_period")
    if len(sys.argv) == 3:
        run_flow(date.fromisoformat(sys.argv[1]), date.fromisoformat(sys.argv[2]))
    else:
        run_flow()
