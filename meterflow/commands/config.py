"""`meterflow config show`: the effective settings, secrets masked."""

from __future__ import annotations

import json

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
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for key, value in scalars.items():
        click.echo(f"{key} = {json.dumps(value)}")
    for section, values in data.items():
        if isinstance(values, dict):
            click.echo(f"\n[{section}]")
            for key, value in values.items():
                click.echo(f"{key} = {json.dumps(value)}")
