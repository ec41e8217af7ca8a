"""The command line and the settings: every command explains itself; secrets never print."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli.main import cli


def _all_commands(group: click.Group, ctx: click.Context, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, f"command {prefix}{name} is listed but does not load"
        found.append((f"{prefix}{name}", cmd))
        if isinstance(cmd, click.Group):
            found += _all_commands(cmd, ctx, f"{prefix}{name} ")
    return found


def test_every_command_has_help_with_an_example() -> None:
    ctx = click.Context(cli)
    commands = _all_commands(cli, ctx)
    assert len(commands) >= 35
    runner = CliRunner()
    missing = []
    for path, _cmd in commands:
        result = runner.invoke(cli, [*path.split(), "--help"])
        assert result.exit_code == 0, f"meterflow {path} --help failed: {result.output}"
        if "Example" not in result.output:
            missing.append(path)
    assert missing == []


def test_config_show_masks_secrets_and_layers_env_over_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "meterflow.toml"
    toml.write_text('timezone = "Europe/Berlin"\n[mqtt]\nurl = "mqtt://broker:1883"\npassword = "hunter2"\n'
                    '[vee]\nstuck_days = 12\n[api]\ntokens = ["t0ken"]\n')
    monkeypatch.setenv("METERFLOW_DATABASE_URL", "postgresql://meter:s3cret@db:5432/meterflow")
    monkeypatch.setenv("METERFLOW_VEE__STUCK_DAYS", "21")
    result = CliRunner().invoke(cli, ["--config-file", str(toml), "config", "show"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["database_url"] == "postgresql://meter:***@db:5432/meterflow"
    assert shown["mqtt"]["url"] == "mqtt://broker:1883" and shown["mqtt"]["password"] == "***"
    assert shown["api"]["tokens"] == ["***"]
    assert shown["timezone"] == "Europe/Berlin"  # from the file
    assert shown["vee"]["stuck_days"] == 21  # the environment wins over the file
    for secret in ("s3cret", "hunter2", "t0ken"):
        assert secret not in result.output


def test_flat_mqtt_url_variable_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    from meterflow.config import Settings

    monkeypatch.delenv("METERFLOW_CONFIG_FILE", raising=False)
    monkeypatch.setenv("METERFLOW_MQTT_URL", "mqtt://10.1.2.3:1883")
    assert Settings().mqtt.url == "mqtt://10.1.2.3:1883"


def test_missing_settings_file_says_what_to_do(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config-file", str(tmp_path / "nope.toml"), "config", "show"])
    assert result.exit_code != 0
    assert "does not exist" in str(result.exception)
