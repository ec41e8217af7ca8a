"""The end-to-end demo: a simulated fleet -> gateways -> MQTT -> decoder service -> database ->
Prefect flow -> a plotly page. Uses the configured services, or embedded ones when none are set."""

from __future__ import annotations

import io
import multiprocessing as mp
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import psycopg

from cli.embedded import EMBEDDED_DB, EmbeddedBroker, database_dsn
from ingest.frames import ReceivedFrame
from meterflow.config import Settings
from meterflow.logs import ctx, get_logger

log = get_logger(__name__)
DEMO_DB = "meterflow_demo"


@dataclass
class DemoResult:
    counts: dict[str, int] = field(default_factory=dict)
    truth: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    report: Path | None = None
    interruptions: list[dict[str, Any]] = field(default_factory=list)
    dsn: str = ""
    mqtt_url: str = ""
    customer_link: str = ""  # a customer's page on `meterflow serve`, as of the end of the simulated data

    @property
    def matches_truth(self) -> bool:
        return self.counts.get("readings_stored") == self.truth.get("expected_distinct_readings")


class Step:
    """Times a stage and says what it is doing on stderr (stdout carries the summary)."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    def __call__(self, name: str) -> Step:
        self.name = name
        return self

    def __enter__(self) -> Step:
        self.t0 = time.perf_counter()
        print(f"[demo] {self.name} ...", file=sys.stderr, flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.timings[self.name] = round(time.perf_counter() - self.t0, 1)
        print(f"[demo] {self.name}: {self.timings[self.name]} s", file=sys.stderr, flush=True)


def demo_database(settings: Settings, database_name: str | None = None) -> str:
    """A fresh database for the demo on the server in force (embedded when none is configured)."""
    from storage.db import with_database

    configured = settings.database_dsn() is not None
    server_dsn = database_dsn(settings)
    # on the embedded server the demo owns the main database, so `meterflow serve` shows its data after
    name = database_name or (DEMO_DB if configured else EMBEDDED_DB)
    try:
        with psycopg.connect(with_database(server_dsn, "postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return with_database(server_dsn, name)
    except psycopg.Error as exc:
        log.warning("cannot create a demo database; using the configured one",
                    extra=ctx(reason=str(exc).strip().splitlines()[0]))
        return server_dsn


def registry_csv(meters: pl.DataFrame) -> tuple[str, str]:
    """The fleet's registry and keys as the CSV files `meterflow meters/keys import` read."""
    keys = meters.select("meter_id", "key_hex")
    registry = meters.drop("key_hex")
    out_m, out_k = io.StringIO(), io.StringIO()
    registry.write_csv(out_m)
    keys.write_csv(out_k)
    return out_m.getvalue(), out_k.getvalue()


class DecoderProcess:
    """The decoder service in a child process: decoding and writing get a core of their own instead of
    sharing one interpreter lock with the simulated gateways and the in-process broker."""

    def __init__(self, settings: Settings, dsn: str, mqtt_url: str, prefix: str, protocol: str) -> None:
        ctx_mp = mp.get_context("spawn")  # no fork: the parent holds threads and the embedded server handle
        self._frames = ctx_mp.Value("q", 0)
        self._ready = ctx_mp.Event()
        self._stop = ctx_mp.Event()
        self._results: Any = ctx_mp.Queue()
        self._proc = ctx_mp.Process(
            target=_decoder_main, name="demo-decoder", daemon=True,
            args=(settings, dsn, mqtt_url, prefix, protocol, self._frames, self._ready, self._stop, self._results),
        )

    def start(self, timeout: float = 120.0) -> None:
        self._proc.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the demo's decoder process did not start; see the log lines above")

    def stats(self) -> dict[str, int]:
        return {"frames": int(self._frames.value)}

    def finish(self, timeout: float = 300.0) -> dict[str, int]:
        """Ask the child to drain, commit and retire its session; returns its final counters."""
        self._stop.set()
        final: dict[str, int] = self._results.get(timeout=timeout)
        self._proc.join(timeout=30)
        return final


def _decoder_main(settings: Settings, dsn: str, mqtt_url: str, prefix: str, protocol: str, frames: Any,
                  ready: Any, stop: Any, results: Any) -> None:
    from meterflow.logs import setup_logging
    from services.decoder import DecoderService

    setup_logging(settings.log_format, settings.log_level)
    service = DecoderService(settings, dsn, mqtt_url, client_id=f"meterflow-demo-{prefix[-8:]}",
                             topic_prefix=prefix, metrics_port=0, migrate=False, session_expiry=0,
                             protocol=protocol)
    service.start()
    ready.set()
    while not stop.is_set():
        frames.value = service.stats().get("frames", 0)
        time.sleep(0.1)
    service.wait_idle(seconds_without_messages=0.5, timeout=120)
    final = service.stats()
    frames.value = final.get("frames", 0)
    service.stop(retire=True)
    results.put(final)


def _warm_up_prefect() -> None:
    """Start Prefect's temporary API server while the fleet streams, not after it."""
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            client.api_healthcheck()
    except Exception as exc:  # the flow itself will report a real problem
        log.info("prefect warm-up failed", extra=ctx(reason=str(exc)))


PUBLISH_CHUNK = 20_000
MAX_BACKLOG_FRAMES = 200_000  # unacknowledged frames at the broker; stays far below any broker queue limit


def _flush(gws: dict[str, Any], pending: dict[str, list[ReceivedFrame]]) -> int:
    n = 0
    for gw, frames in pending.items():
        if frames:
            n += gws[gw].publish_frames(frames)
            frames.clear()
    return n


def _keep_backlog_small(service: Any, enqueued: int) -> None:
    """Pace the simulated gateways to the decoder: a broker's queue is finite (Mosquitto drops past it)."""
    while enqueued - service.stats().get("frames", 0) > MAX_BACKLOG_FRAMES:
        time.sleep(0.05)


def _progress(sent: int, total: int, service: Any, t0: float) -> None:
    done = service.stats().get("frames", 0)
    rate = done / max(time.perf_counter() - t0, 1e-9)
    print(f"\r[demo]   published {sent:>9}/{total}   decoded+stored {done:>9}   {rate:,.0f} frames/s",
          end="", file=sys.stderr, flush=True)


def _wait_for(service: Any, enqueued: int, t0: float, total: int, stall_s: float = 60.0) -> None:
    """Until the decoder has taken every published frame (or made no progress for stall_s)."""
    last, last_change = -1, time.monotonic()
    while True:
        done = service.stats().get("frames", 0)
        _progress(total, total, service, t0)
        if done >= enqueued:
            break
        if done != last:
            last, last_change = done, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            log.warning("decoder made no progress", extra=ctx(decoded=done, published=enqueued))
            break
        time.sleep(0.2)


def store_inlets(fleet: Any, dsn: str, timezone: str) -> int:
    """The fleet's district inlet meters (fixtures.inlets: one district has a network leak), registered and
    read through the decoder's own Modbus path and writer, as if a station gateway had sent them."""
    from fixtures.inlets import inlet_frames, inlet_meters
    from meterflow.envelope import FrameBatch, encode_batch
    from services.processor import FrameProcessor
    from storage.registry import import_meters, parse_meters_csv
    from storage.writer import BatchWriter

    registry = io.StringIO()
    inlet_meters(fleet).write_csv(registry)
    with psycopg.connect(dsn) as conn:
        import_meters(conn, parse_meters_csv(registry.getvalue()))
        conn.commit()
    processor, writer = FrameProcessor({}, timezone), BatchWriter(dsn, application_name="meterflow-demo-inlets")
    frames, stored = inlet_frames(fleet), 0
    try:
        for i in range(0, len(frames), 1000):
            payload = encode_batch(FrameBatch("gw-station", "modbus", frames[i:i + 1000]))
            rows, dead = processor.process("meterflow/v1/gw-station/modbus", payload).split()
            stored += writer.write(rows, dead).readings
    finally:
        writer.close()
    return stored


def run_demo(settings: Settings, meters: int, days: int, seed: int, gateways: int,
             out_dir: Path, database_name: str | None = None) -> DemoResult:
    from dashboards.fleet_report import write_fleet_report
    from fixtures.fleet import FleetConfig, build_fleet
    from ingest.config import GatewayConfig
    from ingest.gateway import Gateway
    from pipelines.daily import daily_consumption
    from storage.migrate import upgrade
    from storage.registry import import_keys, import_meters, parse_keys_csv, parse_meters_csv

    result = DemoResult()
    step = Step(result.timings)
    broker: EmbeddedBroker | None = None
    out_dir.mkdir(parents=True, exist_ok=True)

    with step("services"):
        result.dsn = demo_database(settings, database_name)
        with psycopg.connect(result.dsn) as conn:
            upgrade(conn, settings.timezone)
        if settings.mqtt.url:
            result.mqtt_url = settings.mqtt.url
        else:
            broker = EmbeddedBroker()
            result.mqtt_url = broker.start()

    try:
        with step(f"simulate fleet ({meters} meters, {days} days)"):
            fleet = build_fleet(FleetConfig(meters=meters, days=days, seed=seed))
            truth = fleet.truth
            result.truth = truth.counts()
            registry_text, keys_text = registry_csv(fleet.meters)
            (out_dir / "meters.csv").write_text(registry_text)
            truth.readings.write_parquet(out_dir / "truth_readings.parquet")

        with step("register meters and keys"), psycopg.connect(result.dsn) as conn:
            import_meters(conn, parse_meters_csv(registry_text))
            import_keys(conn, parse_keys_csv(keys_text).rows)
            conn.commit()

        # a private topic prefix: other decoders sharing the broker must not take the demo's frames
        prefix = f"{settings.mqtt.topic_prefix}-demo-{uuid.uuid4().hex[:8]}"
        protocol = "3.1.1" if broker is not None else "auto"  # the in-process broker speaks 3.1.1 only
        service = DecoderProcess(settings, result.dsn, result.mqtt_url, prefix, protocol)
        warm = threading.Thread(target=_warm_up_prefect, name="prefect-warm-up", daemon=True)
        warm.start()
        gateway_ids = tuple(f"gw-{i + 1:02d}" for i in range(gateways))
        for stale in out_dir.glob("outbox-*.sqlite3*"):
            stale.unlink()  # a previous run's leftovers would be published again
        with step("publish, decode, store"):
            service.start()
            gws = {
                gw: Gateway(GatewayConfig.model_validate({
                    "gateway_id": gw,
                    "mqtt": {"url": result.mqtt_url, "client_id": f"meterflow-demo-{prefix[-8:]}-{gw}",
                             "topic_prefix": prefix,
                             "protocol": protocol},
                    "outbox": {"path": str(out_dir / f"outbox-{gw}.sqlite3"), "max_frames": 10_000_000},
                    "batch_max_frames": 1000,
                }))
                for gw in gateway_ids
            }
            sent = enqueued = 0
            total = truth.frames_emitted
            pending: dict[str, list[ReceivedFrame]] = {gw: [] for gw in gateway_ids}
            t_pub = time.perf_counter()
            for frame in fleet.iter_frames(gateway_ids):
                pending[frame.gateway_id].append(frame)
                sent += 1
                if sent % PUBLISH_CHUNK == 0:
                    enqueued += _flush(gws, pending)
                    _keep_backlog_small(service, enqueued)
                    _progress(sent, total, service, t_pub)
            enqueued += _flush(gws, pending)
            for gw in gws.values():
                if not gw.drain(timeout=900):
                    log.warning("gateway outbox not drained", extra=ctx(gateway_id=gw.gateway_id))
            suppressed = sent - enqueued
            for gw in gws.values():
                gw.close()
            _wait_for(service, enqueued, t_pub, total)
            stats = service.finish()
            print(file=sys.stderr)

        with psycopg.connect(result.dsn) as conn:
            stored = conn.execute("SELECT count(*) FROM readings").fetchone()
            dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
            bounds = conn.execute("SELECT min(time), max(time) FROM readings").fetchone()
        result.counts = {
            "frames_sent": sent,
            "suppressed_by_gateways": suppressed,
            "frames_decoded": stats.get("frames", 0),
            "duplicates_dropped": stats.get("duplicates", 0),
            "readings_stored": int(stored[0]) if stored else 0,
            "dead_letters": int(dead[0]) if dead else 0,
        }

        with step("district inlet meters over Modbus (a network leak in one district)"):
            result.counts["inlet_readings"] = store_inlets(fleet, result.dsn, settings.timezone)

        # one thread starts Prefect's temporary server: two racing to start it leave one without a server
        warm.join()
        with step("Prefect flow daily-consumption (starts a temporary Prefect server)"):
            start = bounds[0] if bounds and bounds[0] else fleet.config.start
            end = (bounds[1] if bounds and bounds[1] else start) + timedelta(seconds=1)
            use = daily_consumption(result.dsn, start, end)
        summary: dict[str, object] = {**result.counts, **{f"truth: {k}": v for k, v in result.truth.items()},
                                      **use.summary()}
        result.report = write_fleet_report(out_dir / "consumption.html", use.daily, use.total, summary)
        with step("interruptions: a simulated supply area, detected at the end of the period"):
            from cli.demo_interruptions import run_interruptions_demo

            result.interruptions = run_interruptions_demo(settings, result.dsn, fleet.config.start, days)
        if bounds and bounds[1]:
            result.customer_link = demo_customer_link(settings, result.dsn, bounds[1])
    finally:
        if broker is not None:
            broker.stop()
    return result


def demo_customer_link(settings: Settings, dsn: str, as_of: datetime) -> str:
    """The signed link of a customer with a full simulated period, preferably one whose meter was exchanged."""
    from zoneinfo import ZoneInfo

    from api.pages.auth import customer_link

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            """SELECT m.customer_ref FROM meters m JOIN consumption_daily c USING (meter_id)
               WHERE m.customer_ref IS NOT NULL AND m.role = 'main'
               GROUP BY m.customer_ref ORDER BY count(DISTINCT m.meter_id) > 1 DESC, count(*) DESC, 1 LIMIT 1"""
        ).fetchone()
    if row is None:
        return ""
    now = as_of.astimezone(ZoneInfo(settings.timezone)).strftime("%Y-%m-%dT%H:%M")
    return customer_link(settings, row[0], f"http://{settings.api.host}:{settings.api.port}") + f"&now={now}"

