"""The `meterflow` command. Subcommands load lazily so `--help` and small commands stay fast."""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> "module:attribute" of a click command or group. Each area owns its own module.
COMMANDS: dict[str, str] = {
    "config": "cli.commands.config:config",
    "db": "cli.commands.db:db",
    "demo": "cli.commands.demo:demo",
    "decode": "cli.commands.decode:decode",
    "gateway": "cli.commands.gateway:gateway",
    "decoder": "cli.commands.decoder:decoder",
    "keys": "cli.commands.registry:keys",
    "meters": "cli.commands.registry:meters",
    "reprocess": "cli.commands.decoder:reprocess",
    "readings": "cli.commands.readings:readings",
    "billing": "cli.commands.billing:billing",
    "tariffs": "cli.commands.tariffs:tariffs",
    "leaks": "cli.commands.leaks:leaks",
    "alerts": "cli.commands.alerts:alerts",
    "lists": "cli.commands.alerts:lists",
    "eval": "cli.commands.leaks:eval_group",
    "interruptions": "cli.commands.interruptions:interruptions",
    "serve": "cli.commands.serve:serve",
    "fleet": "cli.commands.fleet:fleet",
    "flows": "cli.commands.flows:flows",
    "bench": "cli.commands.bench:bench",
    "tokens": "cli.commands.tokens:tokens",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when used."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, attr = self.lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=70)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    epilog="Example: meterflow demo            # 30 simulated days, radio to chart, on embedded services",
)
@click.version_option(package_name="meterflow")
@click.option("--config-file", type=click.Path(dir_okay=False), envvar="METERFLOW_CONFIG_FILE",
              help="TOML settings file (default: ./meterflow.toml when present).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="Structured log lines as key=value text or JSON (default from settings).")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, log_format: str | None) -> None:
    """meterflow: remote water-meter reading, storage, billing consumption, leak alerts and charts."""
    from meterflow.config import load_settings
    from meterflow.logs import setup_logging

    settings = load_settings(config_file)
    setup_logging(log_format or settings.log_format, settings.log_level)
    ctx.obj = settings


def main() -> None:
    cli(prog_name="meterflow")


if __name__ == "__main__":
    main()
