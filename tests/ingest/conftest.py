"""Fixtures for the gateway tests: corpus frames, a private Mosquitto, a topic prefix per test."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ingest_testlib import Broker


@pytest.fixture(scope="session")
def corpus_frames(shared_dir: Path) -> list[bytes]:
    """Distinct wM-Bus frames (L-field matches, CRCs removed) from the shared corpus."""
    path = shared_dir / "corpus" / "wmbus" / "cases.jsonl"
    if not path.exists():
        pytest.skip(f"corpus not found at {path}")
    seen: dict[bytes, None] = {}
    for line in path.read_text().splitlines():
        case = json.loads(line)
        hexstr = case.get("telegram_hex") or ""
        try:
            data = bytes.fromhex(hexstr)
        except ValueError:
            continue
        if 12 <= len(data) < 256 and data[0] + 1 == len(data):
            seen[data] = None
    frames = list(seen)
    assert len(frames) > 50
    return frames


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if not shutil.which("mosquitto"):
        pytest.skip("mosquitto is not installed")
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}/v1"


