"""The layers hold: asking for the database never starts one (that is the edge's decision)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.embedded import database_dsn
from meterflow.config import Settings
from storage.db import resolve_dsn


def test_resolve_dsn_reads_settings_and_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METERFLOW_DATABASE_URL", raising=False)
    monkeypatch.delenv("METERFLOW_CONFIG_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    bare = Settings(data_dir=tmp_path / ".meterflow")
    with pytest.raises(RuntimeError, match="no database configured"):
        resolve_dsn(bare)
    assert list(tmp_path.iterdir()) == []  # no pgdata, no run directory: nothing was started
    configured = Settings(database_url="postgresql://u@db:5432/x", data_dir=tmp_path / ".meterflow")
    assert resolve_dsn(configured) == "postgresql://u@db:5432/x"
    assert database_dsn(configured) == "postgresql://u@db:5432/x"  # the edge keeps a configured database
    assert list(tmp_path.iterdir()) == []
