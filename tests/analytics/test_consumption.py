from datetime import UTC, datetime

import polars as pl

from analytics.consumption import bucket_consumption, fleet_daily_total


def _rollup(rows: list[tuple[str, int, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(m, datetime(2026, 5, d, tzinfo=UTC), f, la) for m, d, f, la in rows],
        schema=["meter_id", "bucket", "first_m3", "last_m3"], orient="row",
    )


def test_use_is_difference_of_last_indexes_and_decreases_are_not_use() -> None:
    out = bucket_consumption(_rollup([
        ("a", 2, 10.2, 10.5), ("a", 1, 10.0, 10.1), ("a", 3, 10.6, 10.6),
        ("b", 1, 5.0, 5.25), ("b", 2, 0.0, 0.1),  # exchange: index restarts
    ]))
    assert out["consumption_m3"].to_list() == [0.1, 0.4, 0.1, 0.25, None]
    total = fleet_daily_total(out)
    assert total["consumption_m3"].to_list() == [0.35, 0.4, 0.1]
    assert total["meters"].to_list() == [2, 1, 1]
