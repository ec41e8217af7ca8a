"""Prefect flow `billing-period`: billing consumption for one period, one task per meter-range chunk.

Thin by design: storage.billing loads and stores, analytics.vee.core.compute_billing computes.
Run by hand:     meterflow billing run --from 2024-03-01 --to 2024-04-01
Scheduled:       meterflow billing serve            (monthly cron, previous calendar month)
Several workers: the chunks are independent; `billing_period_pool` runs each chunk as a run of the deployment
                 billing-chunk/pool-chunk on a Prefect work pool (`pool_deployment`), served by process workers.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from analytics.vee.core import compute_billing
from meterflow.config import Settings, load_settings
from meterflow.logs import ctx, get_logger
from meterflow.periods import previous_month
from storage import billing as store
from storage.db import connect, resolve_dsn

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

log = get_logger(__name__)
DEFAULT_CHUNK = 2000
MONTHLY_CRON = "0 3 2 * *"  # 03:00 on the 2nd: the previous month, once late reads of the 1st are in
CHUNK_DEPLOYMENT = "billing-chunk/pool-chunk"  # flow name / deployment name of one chunk on a work pool
WORKER_NAME_ENV = "METERFLOW_WORKER_NAME"  # set on a worker so each chunk says who ran it


def compute_chunk(
    dsn: str, settings: Settings, run_id: int, period_start: date, period_end: date,
    meter_range: tuple[str, str] | None, as_of: datetime | None = None,
) -> dict[str, int]:
    """Load one chunk (a range of family keys from store.meter_ranges), compute, store; returns the chunk's counts
    (meters, results, flags...)."""
    with connect(dsn) as conn:
        inputs = store.load_inputs(conn, period_start, period_end, settings.vee, settings.timezone, meter_range,
                                   families=True)
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

    @flow(name="billing-chunk", persist_result=True)
    def billing_chunk_run(run_id: int, period_start: date, period_end: date, first_meter: str, last_meter: str,
                          as_of: datetime | None = None) -> dict[str, Any]:
        """One chunk as its own flow run: what a work-pool worker runs. Says which worker ran it."""
        settings = load_settings()
        counts = compute_chunk(resolve_dsn(settings), settings, run_id, period_start, period_end,
                               (first_meter, last_meter), as_of)
        return {"worker": os.environ.get(WORKER_NAME_ENV) or f"{socket.gethostname()}:{os.getppid()}", **counts}

    @flow(name="billing-period-pool", log_prints=True)
    def billing_period_pool(
        period_start: date | None = None, period_end: date | None = None, chunk_size: int = DEFAULT_CHUNK,
        deployment_name: str = CHUNK_DEPLOYMENT, timeout_s: float = 900.0,
    ) -> dict[str, Any]:
        """The billing period with every chunk a run of the chunk deployment on its work pool; the workers
        that serve the pool share the chunks. Returns the totals and which worker ran each chunk."""
        if period_start is None or period_end is None:
            period_start, period_end = previous_month()
        workers: list[str] = []

        def on_pool(dsn: str, settings: Settings, run_id: int, start: date, end: date,
                    ranges: Sequence[tuple[str, str] | None], as_of: datetime | None) -> Iterator[dict[str, int]]:
            for out in _run_on_pool(deployment_name, run_id, start, end, ranges, as_of, timeout_s):
                workers.append(str(out.pop("worker")))
                yield {k: int(v) for k, v in out.items()}

        run_id, counts = run_billing(load_settings(), period_start, period_end, chunk_size=chunk_size,
                                     run_chunks=on_pool)
        totals = {"run_id": run_id, **counts, "workers": workers}
        print(f"billing run {run_id} on the work pool: {totals}")
        return totals

    # entrypoints (pipelines/billing.py:billing_period) resolve through the module __getattr__ below
    billing_period.fn.__qualname__ = "billing_period"
    billing_chunk.fn.__qualname__ = "billing_chunk"
    billing_chunk_run.fn.__qualname__ = "billing_chunk_run"
    billing_period_pool.fn.__qualname__ = "billing_period_pool"
    return {"billing_period": billing_period, "billing_chunk": billing_chunk, "billing_chunk_run": billing_chunk_run,
            "billing_period_pool": billing_period_pool}


def _run_on_pool(deployment_name: str, run_id: int, start: date, end: date,
                 ranges: Sequence[tuple[str, str] | None], as_of: datetime | None,
                 timeout_s: float) -> Iterator[dict[str, Any]]:
    """Submit one deployment run per chunk at once, wait for all, yield each chunk's result in order."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    runs = [cast("FlowRun", run_deployment(deployment_name, timeout=0, as_subflow=False,
                           parameters={"run_id": run_id, "period_start": start, "period_end": end,
                                       "first_meter": r[0], "last_meter": r[1], "as_of": as_of}))
            for r in ranges if r is not None]
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        pending = {fr.id for fr in runs}
        while pending:
            for fid in list(pending):
                state = client.read_flow_run(fid).state
                if state is not None and state.is_final():
                    pending.discard(fid)
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} of {len(runs)} billing chunks not finished after {timeout_s:.0f} s;"
                                   " are workers serving the pool? (prefect worker start --pool ...)")
            if pending:
                time.sleep(1.0)
        for fr in runs:
            state = client.read_flow_run(fr.id).state
            if state is None or not state.is_completed():
                raise RuntimeError(f"billing chunk run {fr.name} ended {state.name if state else 'without a state'}")
            yield state.result()


REPO_ROOT = Path(__file__).resolve().parent.parent  # process workers run the flows from this checkout


def pool_deployment(work_pool: str, env: dict[str, str] | None = None, *, apply: bool = True) -> Any:
    """The chunk deployment on a work pool (registered with the Prefect API unless apply=False)."""
    flow_obj = __getattr__("billing_chunk_run")
    name = CHUNK_DEPLOYMENT.split("/", 1)[1]
    dep = flow_obj.to_deployment(name=name, work_pool_name=work_pool, tags=["billing"],
                                 job_variables={"working_dir": str(REPO_ROOT), "env": env or {}})
    if apply:
        dep.apply(work_pool_name=work_pool)
    return dep


def pool_monthly_deployment(work_pool: str, cron: str = MONTHLY_CRON, name: str = "monthly",
                            timezone: str = "UTC") -> Any:
    """The monthly billing on a work pool: billing-period-pool on its cron, run by a worker of the pool, its
    chunks runs of the chunk deployment on the same pool. The parent waits while chunks run, so the pool needs
    room for both (two workers, or a worker limit of 2 or more)."""
    from prefect.schedules import Cron

    flow_obj = __getattr__("billing_period_pool")
    return flow_obj.to_deployment(name=name, schedules=[Cron(cron, timezone=timezone)], tags=["billing"],
                                  work_pool_name=work_pool, job_variables={"working_dir": str(REPO_ROOT)})


_PREFECT: dict[str, Any] = {}


def __getattr__(name: str) -> Any:  # PEP 562: pipelines.billing.billing_period / billing_chunk / ..._pool
    if name in ("billing_period", "billing_chunk", "billing_chunk_run", "billing_period_pool"):
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
