"""The tree stays ruff-clean, the pure core stays `mypy --strict` clean, and no merge is left half-done."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return path


def test_ruff_is_clean() -> None:
    res = subprocess.run([_tool("ruff"), "check", "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-4000:]


def test_core_is_mypy_strict_clean() -> None:
    res = subprocess.run([_tool("mypy"), "decoders", "analytics"], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout[-4000:]


def test_no_merge_conflict_markers() -> None:
    """A merge left half-done would ship both sides of a conflict (README tables included)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, timeout=60)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    markers = ("<<<<<<< ", ">>>>>>> ")
    found = []
    for name in tracked.stdout.splitlines():
        path = REPO / name
        if path.suffix not in {".py", ".md", ".html", ".toml", ".sql", ".po", ".pot", ".css", ".js", ".sh", ".cfg"}:
            continue
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if line.startswith(markers):
                found.append(f"{name}:{number}")
    assert found == [], f"merge conflict markers left in: {found[:20]}"
