"""Access to the shared wM-Bus conformance corpus (<repo root>/../shared/corpus/wmbus)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "wmbus" / "cases.jsonl"


def load_cases() -> list[dict[str, Any]]:
    if not CORPUS.exists():
        return []
    with CORPUS.open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def keys_for(case: dict[str, Any], meter_id: str | None = None) -> dict[str, bytes]:
    """The case key under the expected id (and the ANYID placeholder's real id)."""
    if not case.get("key"):
        return {}
    key = bytes.fromhex(case["key"])
    ids = {case["id"], case["expected"].get("id", case["id"])}
    if meter_id:
        ids.add(meter_id)
    return {i: key for i in ids}
