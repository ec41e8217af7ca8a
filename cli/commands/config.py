"""`meterflow config show`: the effective settings, secrets masked."""

from __future__ import annotations

import json
from typing import Any

import click

from meterflow.config import Settings, masked_dict


@click.group(epilog="Example: meterflow config show --format toml")
def config() -> None:
    """Inspect the effective settings."""


@config.command("show", epilog="Example: METERFLOW_DATABASE_URL=postgresql://u:p@db/meterflow meterflow config show")
@click.option("--format", "fmt", type=click.Choice(["json", "toml"]), default="json", show_default=True)
@click.pass_obj
def show(settings: Settings, fmt: str) -> None:
    """Print the settings in force (environment > TOML file > defaults), with secrets masked."""
    data = masked_dict(settings)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, default=str))
        return
    click.echo("\n".join(_toml_lines(data)).strip())


def _toml_lines(data: dict[str, Any], section: str = "") -> list[str]:
    """Settings as TOML: scalars first, then one [section] per nested table; unset values as comments
    (TOML has no null)."""
    out = [f"\n[{section}]"] if section else []
    for key, value in data.items():
        if not isinstance(value, dict):
            out.append(f"# {key} is unset" if value is None else f"{key} = {json.dumps(value, default=str)}")
    for key, value in data.items():
        if isinstance(value, dict):
            out += _toml_lines(value, f"{section}.{key}" if section else key)
    return out
