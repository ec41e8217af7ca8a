"""The monthly billing flow on a Prefect work pool served by two process workers: a real Prefect server, a
process work pool, two `prefect worker start` processes; both take chunks and the results equal a
single-process run. Slow (Prefect server and one Python process per chunk); bounded by timeouts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import psycopg
import pytest
from _billing_seed import TZ, local, seed

from meterflow.config import Settings
from pipelines.billing import run_billing
from storage import billing as store
from storage import reading_import

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).parent / "prefect")
METERFLOW = str(Path(sys.executable).parent / "meterflow")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "prefect server exited early"
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1.0)
    raise AssertionError(f"prefect server not healthy after {timeout_s:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a process this test started (and its children: workers run each chunk as a child process)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def prefect_env(tmp_path: Path, database_url: str) -> Iterator[dict[str, str]]:
    """A private Prefect server on a free port; the environment every process of the test shares."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "METERFLOW_"))}
    env.update({
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_LOCAL_STORAGE_PATH": str(tmp_path / "results"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "METERFLOW_DATABASE_URL": database_url,
        "METERFLOW_TIMEZONE": TZ,
    })
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(env["PREFECT_API_URL"], server, 240)
        yield env
    finally:
        _stop(server)
        log.close()


def _seed_more(conn: psycopg.Connection) -> None:
    """The three seed meters plus a garden sub-meter of A and three more main meters: 5 families (P1: A and GA,
    P2: B exchanged for C, P4, P5, P6), one chunk each."""
    seed(conn)
    conn.execute("UPDATE meters SET customer_ref = 'CUST-A' WHERE meter_id = 'A'")
    conn.execute("INSERT INTO meters (meter_id, premise_ref, role, parent_meter_id, register_digits) VALUES"
                 " ('GA', 'P1', 'garden', 'A', 5), ('D', 'P4', 'main', NULL, 5), ('E', 'P5', 'main', NULL, 5),"
                 " ('F', 'P6', 'main', NULL, 5)")
    conn.commit()
    rows = [("GA", local(2024, 3, 1), 5.0, 1), ("GA", local(2024, 4, 1), 9.0, 2)]
    for i, m in enumerate(("D", "E", "F")):
        rows += [(m, local(2024, 3, 1), 10.0 * i, 3 + 2 * i), (m, local(2024, 4, 1), 10.0 * i + 7.5 + i, 4 + 2 * i)]
    good = pl.DataFrame(rows, schema={"meter_id": pl.String, "time": pl.Datetime("us", "UTC"),
                                      "total_m3": pl.Float64, "line": pl.Int64}, orient="row")
    assert reading_import.import_readings(conn, good, file="more.csv").inserted == 8


@pytest.mark.timeout(900)
def test_billing_on_a_work_pool_with_two_process_workers(clean_db: psycopg.Connection, settings: Settings,
                                                         prefect_env: dict[str, str], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    clean_db.execute("TRUNCATE reading_conflicts, tariff_changes")
    clean_db.commit()
    _seed_more(clean_db)
    env = prefect_env
    made = subprocess.run([PREFECT, "work-pool", "create", "billing-test", "--type", "process"], env=env,
                          capture_output=True, text=True, timeout=180, cwd=REPO)
    assert made.returncode == 0, made.stdout + made.stderr
    workers = []
    try:
        for name in ("w1", "w2"):
            log = (tmp_path / f"{name}.log").open("wb")
            workers.append(subprocess.Popen(
                [PREFECT, "worker", "start", "--pool", "billing-test", "--limit", "1", "--name", name],
                env={**env, "METERFLOW_WORKER_NAME": name}, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))
        run = subprocess.run([METERFLOW, "billing", "run", "--period", "2024-03", "--chunk-size", "1",
                              "--work-pool", "billing-test"], env=env, cwd=REPO, capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    finally:
        for w in workers:
            _stop(w)
    totals = json.loads(run.stdout.strip().splitlines()[-1])
    assert totals["meters"] == 7 and totals["results"] == 7
    assert len(totals["workers"]) == 5 and set(totals["workers"]) == {"w1", "w2"}  # both workers took chunks
    pool_rows = store.load_results(clean_db, date(2024, 3, 1), date(2024, 4, 1)).drop("run_id")
    # the same period in this process, no Prefect: a newer run with the very same rows
    monkeypatch.setenv("METERFLOW_DATABASE_URL", env["METERFLOW_DATABASE_URL"])
    monkeypatch.setenv("METERFLOW_TIMEZONE", TZ)
    single_id, _ = run_billing(Settings(), date(2024, 3, 1), date(2024, 4, 1))
    single = store.load_results(clean_db, date(2024, 3, 1), date(2024, 4, 1))
    assert single["run_id"].unique().to_list() == [single_id] and single_id != totals["run_id"]
    assert single.drop("run_id").to_dicts() == pool_rows.to_dicts()
    a = pool_rows.filter(pl.col("meter_id") == "A").row(0, named=True)
    assert (a["water_m3"], a["sewage_m3"], a["customer_ref"]) == (31.0, 27.0, "CUST-A")
