"""The README stays true: its gateway example is the shipped file, every command is listed, and the
example itself is a valid gateway configuration."""

from __future__ import annotations

import re
from pathlib import Path

from cli.main import COMMANDS
from ingest.config import GatewayConfig

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_readme_gateway_example_is_the_shipped_file() -> None:
    shipped = (REPO / "ingest" / "gateway.example.toml").read_text().rstrip()
    block = re.search(r"<summary>ingest/gateway.example.toml</summary>\s*```toml\n(.*?)\n```", README, re.S)
    assert block is not None and block.group(1) == shipped
    assert GatewayConfig.from_toml(REPO / "ingest" / "gateway.example.toml").gateway_id


def test_readme_lists_every_command() -> None:
    missing = [name for name in COMMANDS if f"`meterflow {name}" not in README]
    assert missing == []


def test_readme_images_exist() -> None:
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert len(images) >= 5
    assert [i for i in images if not (REPO / i).is_file()] == []
