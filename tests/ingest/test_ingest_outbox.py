"""The durable outbox: survives reopening, stays bounded, and takes frames far faster than radios send."""

from __future__ import annotations

import time
from pathlib import Path

from ingest.frames import ReceivedFrame
from ingest.outbox import Outbox


def bodies(n: int, start: int = 0) -> list[str]:
    return [ReceivedFrame(i.to_bytes(4, "big") * 10, 1.7e9 + i, -70).wire() for i in range(start, start + n)]


def test_survives_reopen_and_acks_in_order(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    ob = Outbox(path, max_frames=10_000)
    ob.put_many("wmbus", bodies(100))
    ob.put_many("modbus", bodies(10, 100))
    rows = ob.fetch_after(0, 50)
    assert [r[1] for r in rows] == ["wmbus"] * 50
    assert ob.ack([r[0] for r in rows]) == 50
    ob.close()  # like a restart: what was not acknowledged is still there, in order
    ob = Outbox(path, max_frames=10_000)
    assert ob.depth == 60
    rows = ob.fetch_after(0, 1000)
    assert [r[2] for r in rows] == bodies(50, 50) + bodies(10, 100)
    assert ob.ack([r[0] for r in rows] + [999_999]) == 60
    assert ob.depth == 0
    ob.close()


def test_bounded_drops_oldest_and_counts(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3", max_frames=1000)
    assert ob.put_many("wmbus", bodies(800)) == 0
    assert ob.put_many("wmbus", bodies(500, 800)) == 300
    assert ob.depth == 1000 and ob.dropped == 300
    first = ob.fetch_after(0, 1)[0]
    assert first[2] == bodies(1, 300)[0]
    ob.close()


def test_insert_rate_well_over_20000_per_second(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3", max_frames=1_000_000)
    data = bodies(100_000)
    t0 = time.perf_counter()
    for i in range(0, len(data), 2000):  # batches as the gateway writes them
        ob.put_many("wmbus", data[i:i + 2000])
    rate = len(data) / (time.perf_counter() - t0)
    ob.close()
    assert rate > 60_000, f"outbox insert {rate:.0f} frames/s"
