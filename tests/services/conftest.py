"""Fixtures for the decoder service tests (helpers live in decoder_support.py)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest
from decoder_support import PG_BIN, PrivateMosquitto, PrivatePostgres


@pytest.fixture(scope="session")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMosquitto]:
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto binary not installed")
    broker = PrivateMosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN}")
    server = PrivatePostgres()
    server.init()
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def prefix() -> str:
    """A topic prefix of its own per test, so tests sharing a broker never see each other's traffic."""
    return f"mftest-{uuid.uuid4().hex[:8]}/v1"


