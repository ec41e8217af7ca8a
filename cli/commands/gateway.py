"""`meterflow gateway`: run a field gateway."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
from typing import Any

import click


def _load(config_path: str) -> Any:
    from pydantic import ValidationError

    from ingest.config import GatewayConfig

    try:
        return GatewayConfig.from_toml(config_path)
    except ValidationError as exc:
        raise click.ClickException(f"{config_path}: invalid gateway config:\n{exc}") from None
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{config_path}: {exc}") from None


@click.command(epilog="Example: meterflow gateway --config /etc/meterflow/gateway.toml")
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Gateway TOML file (see ingest/gateway.example.toml).")
@click.option("--check", is_flag=True, help="Validate the file, print it with secrets masked, and exit.")
def gateway(config_path: str, check: bool) -> None:
    """Run a field gateway: radio sticks and Modbus meters -> durable outbox -> MQTT batches."""
    cfg = _load(config_path)
    if check:
        click.echo(json.dumps(cfg.masked(), indent=2))
        return
    from ingest.gateway import Gateway

    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        gw = Gateway(cfg)
    except (OSError, sqlite3.Error) as exc:  # unreadable password file, outbox directory not writable, ...
        raise click.ClickException(f"cannot start the gateway: {exc}") from None
    gw.run(stop)
