"""`meterflow decoder` (the decoder service) and `meterflow reprocess` (retry dead letters)."""

from __future__ import annotations

import signal
import socket
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from meterflow import retry
from meterflow.config import Settings
from meterflow.logs import ctx, get_logger

log = get_logger(__name__)


NO_BROKER = ("no MQTT broker configured: set METERFLOW_MQTT_URL (or METERFLOW_MQTT__URL, or url under [mqtt] in "
             "meterflow.toml), e.g. mqtt://127.0.0.1:1883")


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

    from cli.embedded import database_dsn
    from services.decoder import DecoderService

    url = settings.mqtt.url
    if not url:
        raise click.UsageError(NO_BROKER)
    name = instance or socket.gethostname()
    service = DecoderService(settings, database_dsn(settings), url,
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
                service.start(stop=stop)
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
@click.option("--dead-letters", "dead_letters", is_flag=True,
              help="Retry unresolved dead letters (e.g. after `meterflow keys import`).")
@click.option("--archive", "archive", type=click.Path(exists=True, path_type=Path), default=None,
              help="Decode archived raw frames again (a raw-archive file or folder, see `db maintain`).")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
              default=None, help="Only dead letters received at or after this time (UTC).")
@click.option("--code", "codes", multiple=True, help="Only these error codes (repeatable), e.g. --code no_key.")
@click.pass_obj
def reprocess(settings: Settings, dead_letters: bool, archive: Path | None, since: datetime | None,
              codes: tuple[str, ...]) -> None:
    """Retry dead letters (those that decode now become readings and are marked resolved), or archived frames."""
    from cli.embedded import database_dsn
    from services.reprocess import reprocess_archive, reprocess_dead_letters
    from storage import raw_archive
    from storage.db import connect
    from storage.migrate import upgrade

    if not dead_letters and archive is None:
        raise click.UsageError("say what to reprocess: --dead-letters or --archive PATH")
    dsn = database_dsn(settings)
    with connect(dsn) as conn:
        upgrade(conn, settings.timezone)
    if archive is not None:
        done = reprocess_archive(dsn, raw_archive.files(archive) if archive.is_dir() else [archive],
                                 settings.timezone)
        click.echo(f"reprocess: {done['frames']} archived frames, {done['readings']} readings added,"
                   f" {done['dead_letters']} dead letters")
        if not dead_letters:
            return
    since_utc = since.replace(tzinfo=UTC) if since is not None and since.tzinfo is None else since

    def progress(done: int, total: int) -> None:
        click.echo(f"\rreprocess: {done}/{total}", nl=False, err=True)

    result = reprocess_dead_letters(dsn, settings.timezone, since=since_utc, codes=codes or None,
                                    progress=progress)
    click.echo("", err=True)
    click.echo(f"reprocess: {result['tried']} dead letters tried, {result['resolved']} resolved, "
               f"{result['readings']} readings added, {result['still_failing']} still failing")
