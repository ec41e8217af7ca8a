"""`meterflow decoder`, `meterflow reprocess`, `meterflow bench ingest`."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import click

from meterflow import retry
from meterflow.config import Settings
from meterflow.logs import ctx, get_logger

log = get_logger(__name__)
DEFAULT_BENCH_MQTT = "mqtt://127.0.0.1:1883"
DEFAULT_BENCH_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


NO_BROKER = ("no MQTT broker configured: set METERFLOW_MQTT_URL (or METERFLOW_MQTT__URL, or url under [mqtt] in "
             "meterflow.toml), e.g. mqtt://127.0.0.1:1883")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@click.command(epilog="Example: METERFLOW_MQTT_URL=mqtt://127.0.0.1:1883 meterflow decoder --instance dec-1")
@click.option("--instance", default=None,
              help="Stable name of this decoder (MQTT client id suffix; default: host name). "
                   "Each of N decoders sharing the load needs its own; reuse it after a restart.")
@click.option("--receive-maximum", default=1000, show_default=True, type=click.IntRange(1, 65535),
              help="MQTT 5: unacknowledged messages the broker may send before waiting for acks.")
@click.option("--protocol", type=click.Choice(["auto", "5", "3.1.1"]), default=None,
              help="MQTT protocol (default: mqtt.protocol, auto); auto asks the broker (MQTT 5 enables "
                   "shared subscriptions).")
@click.option("--metrics-port", type=int, default=None, help="Serve /metrics here (default from settings; 0=off).")
@click.option("--retire", is_flag=True,
              help="On SIGTERM/SIGINT drain what the broker queued for this instance, then end its broker "
                   "session (scaling down for good). Without it the broker keeps queueing this instance's "
                   "share of a shared subscription until it returns.")
@click.pass_obj
def decoder(settings: Settings, instance: str | None, receive_maximum: int, protocol: str | None,
            metrics_port: int | None, retire: bool) -> None:
    """Consume gateway batches from MQTT, decode, store readings; ack only what is committed."""
    import psycopg

    from services.decoder import DecoderService
    from storage.db import resolve_dsn

    url = settings.mqtt.url
    if not url:
        raise click.UsageError(NO_BROKER)
    name = instance or socket.gethostname()
    service = DecoderService(settings, resolve_dsn(settings), url,
                             client_id=f"{settings.mqtt.client_id_prefix}-decoder-{name}",
                             receive_maximum=receive_maximum, protocol=protocol, metrics_port=metrics_port)
    stop = threading.Event()

    def _signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)
    try:  # the database may be down when the decoder starts: wait for it, do not exit
        for attempt in retry.DEFAULT.retrying("decoder start (database)", (psycopg.OperationalError, OSError),
                                              stop, instance=name):
            with attempt:
                service.start()
    except (psycopg.OperationalError, OSError):
        sys.exit(0)  # stopped before the database came
    log.info("decoder running", extra=ctx(instance=name))
    while not stop.wait(0.5):
        if service.failed:
            log.critical("decoder failed; exiting so the supervisor restarts it", extra=ctx(error=service.failed))
            service.stop(timeout=5)
            sys.exit(70)
    log.info("stopping: committing the current batch")
    ok = service.stop(retire=retire)
    log.info("decoder stopped", extra=ctx(**service.stats()))
    sys.exit(0 if ok else 1)


@click.command(epilog="Example: meterflow reprocess --dead-letters --since 2026-11-01")
@click.option("--dead-letters", "dead_letters", is_flag=True, required=True,
              help="Retry unresolved dead letters (e.g. after `meterflow keys import`).")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
              default=None, help="Only dead letters received at or after this time (UTC).")
@click.option("--code", "codes", multiple=True, help="Only these error codes (repeatable), e.g. --code no_key.")
@click.pass_obj
def reprocess(settings: Settings, dead_letters: bool, since: datetime | None, codes: tuple[str, ...]) -> None:
    """Retry dead letters; those that decode now become readings and are marked resolved."""
    from services.reprocess import reprocess_dead_letters
    from storage.db import connect, resolve_dsn
    from storage.migrate import upgrade

    dsn = resolve_dsn(settings)
    with connect(dsn) as conn:
        upgrade(conn, settings.timezone)
    since_utc = since.replace(tzinfo=UTC) if since is not None and since.tzinfo is None else since

    def progress(done: int, total: int) -> None:
        click.echo(f"\rreprocess: {done}/{total}", nl=False, err=True)

    result = reprocess_dead_letters(dsn, settings.timezone, since=since_utc, codes=codes or None,
                                    progress=progress)
    click.echo("", err=True)
    click.echo(f"reprocess: {result['tried']} dead letters tried, {result['resolved']} resolved, "
               f"{result['readings']} readings added, {result['still_failing']} still failing")


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
    import psycopg

    from services.bench import run_ingest_bench

    mqtt_url = settings.mqtt.url
    broker = None
    if not mqtt_url:
        if _reachable("127.0.0.1", 1883):
            mqtt_url = DEFAULT_BENCH_MQTT
        else:
            from meterflow.embedded import EmbeddedBroker

            broker = EmbeddedBroker()
            mqtt_url = broker.start()
            click.echo(f"bench: no broker configured or on :1883; using embedded amqtt at {mqtt_url}", err=True)
    server = settings.database_dsn()
    if not server and _reachable("127.0.0.1", 5432):
        server = DEFAULT_BENCH_PG
    if not server:
        from storage.db import resolve_dsn

        server = resolve_dsn(settings)
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


