"""The ingest benchmark: telegrams -> real broker -> DecoderService -> PostgreSQL, checked row by row.

Baseline measured in the same run: the decode-only rate (envelope parsing, normalising, AES and record
decoding of the same frames, no broker, no database), so the figure is also shown as a ratio to it.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import click
import orjson
import psycopg

from meterflow.config import Settings
from meterflow.envelope import FrameBatch, encode_batch, topic
from meterflow.mqtt import MqttSettings, make_client, speaks_v5
from services.decoder import DecoderService
from services.processor import FrameProcessor
from storage.migrate import upgrade
from storage.registry import import_keys


def build_messages(telegrams: Sequence[Any], prefix: str, per_message: int, gateways: int,
                   t0: float) -> list[tuple[str, bytes]]:
    """Gateway batch messages: frames spread over gateways, `per_message` per batch."""
    per_gw: list[list[dict[str, Any]]] = [[] for _ in range(gateways)]
    for k, tel in enumerate(telegrams):
        per_gw[k % gateways].append({"t": round(t0 + k * 1e-4, 4), "hex": tel.frame.hex(), "rssi": -70 - k % 30})
    out: list[tuple[str, bytes]] = []
    for g, frames in enumerate(per_gw):
        gw = f"bench-gw-{g:02d}"
        for n, i in enumerate(range(0, len(frames), per_message)):
            batch = FrameBatch(gw, "wmbus", frames[i : i + per_message], f"{gw}:1:{n}", t0)
            out.append((topic(prefix, gw, "wmbus"), encode_batch(batch)))
    # interleave gateways as real traffic would
    out.sort(key=lambda m: (int(m[1].split(b'"batch":"', 1)[1].split(b'"', 1)[0].rsplit(b":", 1)[1]), m[0]))
    return out


def decode_only_rate(messages: Sequence[tuple[str, bytes]], keys: dict[str, bytes], timezone: str,
                     limit_frames: int = 40000) -> float:
    """Frames/s of the decoder's per-message work alone (fresh caches, as in the service)."""
    processor = FrameProcessor(dict(keys), timezone)
    n = 0
    started = time.perf_counter()
    for name, payload in messages:
        out = processor.process(name, payload)
        n += len(out.rows) + len(out.dead)
        if n >= limit_frames:
            break
    return n / (time.perf_counter() - started)


STAT_FIELDS = ("messages", "frames", "readings", "duplicates", "dead_letters", "batches", "write_ms", "decode_ms")


def _decoder_process(settings: Settings, dsn: str, mqtt_url: str, prefix: str, index: int, shared: Any,
                     ready: Any, stop: Any, protocol: str) -> None:
    """One decoder (a child process): run the service, publish its counters into `shared`."""
    service = DecoderService(settings, dsn, mqtt_url, client_id=f"meterflow-bench-decoder-{os.getppid()}-{index}",
                             topic_prefix=prefix, kinds=("wmbus",), session_expiry=120, metrics_port=0,
                             migrate=False, protocol=protocol)
    service.start()
    ready.set()

    def publish() -> None:
        st = service.stats()
        for k, name in enumerate(STAT_FIELDS):
            shared[len(STAT_FIELDS) * index + k] = st[name]

    while not stop.wait(0.01):
        publish()
    service.stop(retire=True)
    publish()


class _Acked:
    """Batches whose commit a decoder acknowledged (`<prefix>/<gw>/ack`), as a gateway counts them."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self._event = threading.Event()

    @property
    def n(self) -> int:
        return len(self.ids)

    def add(self, payload: bytes | bytearray) -> None:
        body = orjson.loads(payload)
        self.ids.update(body.get("batches", ()))
        self._event.set()

    def wait(self, seconds: float) -> None:
        self._event.wait(seconds)
        self._event.clear()


def _acking_publisher(mq: MqttSettings, client_id: str, v5: bool, prefix: str) -> tuple[Any, _Acked]:
    acked = _Acked()
    pub = make_client(mq, client_id, v5)
    pub.max_inflight_messages_set(100)
    pub.on_message = lambda client, userdata, msg: acked.add(msg.payload)
    addr = mq.address()
    pub.connect(addr.host, addr.port)
    pub.subscribe(f"{prefix}/+/ack", qos=1)
    pub.loop_start()
    return pub, acked


def run_ingest_bench(settings: Settings, dsn: str, mqtt_url: str, telegrams: Sequence[Any],
                     keys: dict[str, bytes], *, per_message: int = 250, gateways: int = 4, window: int = 400,
                     decoders: int = 2, echo: Callable[[str], None] = print,
                     timeout: float = 600.0) -> dict[str, Any]:
    """Publish every telegram once through the broker to `decoders` decoder processes (one MQTT 5 shared
    subscription); the clock runs from the first publish to the last frame committed."""
    with psycopg.connect(dsn) as conn:
        upgrade(conn, settings.timezone)
        import_keys(conn, [{"meter_id": m, "key": k} for m, k in keys.items()])
    prefix = f"meterflow-bench-{os.getpid()}/v1"
    messages = build_messages(telegrams, prefix, per_message, gateways, time.time())
    baseline = decode_only_rate(messages, keys, settings.timezone)
    echo(f"baseline: decode-only {baseline:.0f} frames/s (one thread, no broker, no database)")

    mq = settings.mqtt.model_copy(update={"url": mqtt_url})
    pub_id = f"meterflow-bench-pub-{os.getpid()}"
    v5 = speaks_v5(mq, pub_id)
    if not v5 and decoders > 1:
        echo("bench: broker has no MQTT 5 (no shared subscriptions); using one decoder")
        decoders = 1
    mp = multiprocessing.get_context("fork")
    shared = mp.Array("q", len(STAT_FIELDS) * decoders, lock=False)
    stop = mp.Event()
    procs = []
    for i in range(decoders):
        ready = mp.Event()
        proc = mp.Process(target=_decoder_process, name=f"bench-decoder-{i}", daemon=True,
                          args=(settings, dsn, mqtt_url, prefix, i, shared, ready, stop, "5" if v5 else "3.1.1"))
        proc.start()
        if not ready.wait(60):
            raise RuntimeError("a bench decoder did not start within 60 s")
        procs.append(proc)

    def stats() -> dict[str, int]:
        values = list(shared)
        n = len(STAT_FIELDS)
        return {name: sum(values[i * n + k] for i in range(decoders)) for k, name in enumerate(STAT_FIELDS)}

    pub, acked = _acking_publisher(mq, pub_id, v5, prefix)
    try:
        started = time.perf_counter()
        infos = []
        for i, (name, payload) in enumerate(messages):
            while i - acked.n >= window:  # the window runs on the decoders' commit acknowledgements
                acked.wait(0.002)
            infos.append(pub.publish(name, payload, qos=1))
        for info in infos:
            info.wait_for_publish(timeout=60)
        deadline = time.monotonic() + timeout
        while acked.n < len(messages) and time.monotonic() < deadline:
            acked.wait(0.005)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        for proc in procs:
            proc.join(60)
        pub.disconnect()
        pub.loop_stop()
    st = stats()

    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TEMP TABLE expected (meter_id text, time timestamptz)")
        with conn.cursor().copy("COPY expected FROM STDIN") as copy:
            for tel in telegrams:
                copy.write_row((tel.meter_id, tel.time))
        distinct = conn.execute("SELECT count(*) FROM (SELECT DISTINCT meter_id, time FROM expected) e").fetchone()
        found = conn.execute("SELECT count(*) FROM readings r JOIN (SELECT DISTINCT meter_id, time FROM expected) e"
                             " USING (meter_id, time)").fetchone()
        rows = conn.execute("SELECT count(*) FROM readings").fetchone()
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    assert distinct and found and rows and dead
    expected, matched, stored = int(distinct[0]), int(found[0]), int(rows[0])
    rate = st["readings"] / elapsed if elapsed > 0 else 0.0
    echo(f"decoders: {decoders} processes ({'MQTT 5 shared subscription' if v5 else 'MQTT 3.1.1'}), "
         f"{st['messages']} messages, {st['frames']} frames, {st['readings']} readings, {st['duplicates']} "
         f"duplicates, {st['dead_letters']} dead letters ({int(dead[0])} in table), {st['batches']} batches; "
         f"busy: write {st['write_ms'] / 1000:.1f} s, decode {st['decode_ms'] / 1000:.1f} s; wall {elapsed:.2f} s")
    echo(f"commit acknowledgements: {acked.n} of {len(messages)} batches confirmed to the publisher")
    echo(f"ratio: ingest / decode-only = {rate / baseline:.2f}")
    return {"rate": rate, "lost": expected - matched, "duplicated": stored - matched, "baseline": baseline,
            "elapsed": elapsed, "stats": st}


DEFAULT_BENCH_MQTT = "mqtt://127.0.0.1:1883"
DEFAULT_BENCH_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _bench_frames(n_meters: int, n_frames: int) -> tuple[list[Any], dict[str, bytes], str]:
    """(telegrams, keys, source): mode-5 telegrams of the fleet encoder, round-robin over the meters."""
    from fixtures import telegrams as omsgen

    keys = {omsgen.meter_id(i): omsgen.meter_key(omsgen.meter_id(i)) for i in range(n_meters)}
    return list(omsgen.fleet_telegrams(n_meters, n_frames)), keys, "fixtures.telegrams"


@click.command("ingest", epilog="Example: meterflow bench ingest --meters 10000 --frames 200000")
@click.option("--meters", default=10000, show_default=True, help="Simulated meters (each with its own AES key).")
@click.option("--frames", default=200000, show_default=True, help="Mode-5 telegrams sent through the broker.")
@click.option("--per-message", default=250, show_default=True, help="Frames per gateway batch message.")
@click.option("--gateways", default=4, show_default=True, help="Simulated gateways (topics).")
@click.option("--window", default=400, show_default=True,
              help="Most messages the publisher runs ahead of the decoder's acks (a stock Mosquitto queues "
                   "1000 messages per subscriber, then drops QoS 1 silently).")
@click.option("--decoders", default=2, show_default=True,
              help="Decoder processes sharing the subscription (MQTT 5 shared subscription).")
@click.option("--keep-db", is_flag=True, help="Keep the scratch database.")
@click.pass_obj
def bench_ingest(settings: Settings, meters: int, frames: int, per_message: int, gateways: int, window: int,
                 decoders: int, keep_db: bool) -> None:
    """Frames -> broker -> decoder -> PostgreSQL; prints readings/s, lost and duplicated."""
    mqtt_url = settings.mqtt.url
    broker = None
    if not mqtt_url:
        if _reachable("127.0.0.1", 1883):
            mqtt_url = DEFAULT_BENCH_MQTT
        else:
            from cli.embedded import EmbeddedBroker

            broker = EmbeddedBroker()
            mqtt_url = broker.start()
            click.echo(f"bench: no broker configured or on :1883; using embedded amqtt at {mqtt_url}", err=True)
    server = settings.database_dsn()
    if not server and _reachable("127.0.0.1", 5432):
        server = DEFAULT_BENCH_PG
    if not server:
        from cli.embedded import database_dsn

        server = database_dsn(settings)
    from storage.db import with_database

    scratch = f"meterflow_bench_{os.getpid()}"
    created = False
    try:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{scratch}"')
        dsn = with_database(server, scratch)
        created = True
    except psycopg.Error as exc:
        dsn = server
        click.echo(f"bench: WARNING cannot create a scratch database ({str(exc).strip()}); writing into the "
                   "configured database", err=True)
    try:
        telegrams, keys, source = _bench_frames(meters, frames)
        click.echo(f"bench: {len(telegrams)} frames for {meters} meters from {source}; broker {mqtt_url}", err=True)
        report = run_ingest_bench(settings, dsn, mqtt_url, telegrams, keys, per_message=per_message,
                                  gateways=gateways, window=window, decoders=decoders, echo=lambda s: click.echo(s))
    finally:
        if broker is not None:
            broker.stop()
        if created and not keep_db:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    click.echo(f"ingest: {report['rate']:.0f} readings/s, lost {report['lost']}, duplicated {report['duplicated']}")
    if report["lost"] or report["duplicated"]:
        sys.exit(1)
