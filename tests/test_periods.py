"""Month arithmetic and local-midnight boundaries (meterflow/periods.py), the one place every layer uses."""

from __future__ import annotations

from datetime import UTC, date, datetime

from meterflow.periods import add_months, local_midnight, month_start, next_month, previous_month


def test_add_months_clips_the_day_and_crosses_years() -> None:
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)  # leap year
    assert add_months(date(2023, 1, 31), 1) == date(2023, 2, 28)
    assert add_months(date(2100, 3, 31), -1) == date(2100, 2, 28)  # a century is not a leap year
    assert add_months(date(2000, 3, 31), -1) == date(2000, 2, 29)  # unless divisible by 400
    assert add_months(date(2024, 11, 15), 2) == date(2025, 1, 15)
    assert add_months(date(2024, 3, 1), -13) == date(2023, 2, 1)
    assert add_months(date(2024, 5, 31), -12) == date(2023, 5, 31)


def test_month_boundaries() -> None:
    assert month_start(date(2024, 2, 29)) == date(2024, 2, 1)
    assert next_month(date(2024, 12, 31)) == date(2025, 1, 1)
    assert next_month(date(2024, 1, 31)) == date(2024, 2, 1)
    assert previous_month(date(2024, 1, 15)) == (date(2023, 12, 1), date(2024, 1, 1))
    assert previous_month(date(2024, 3, 1)) == (date(2024, 2, 1), date(2024, 3, 1))


def test_local_midnight_follows_daylight_saving() -> None:
    assert local_midnight(date(2024, 3, 1), "Europe/Warsaw") == datetime(2024, 2, 29, 23, tzinfo=UTC)
    assert local_midnight(date(2024, 4, 1), "Europe/Warsaw") == datetime(2024, 3, 31, 22, tzinfo=UTC)
    assert local_midnight(date(2024, 4, 1), "UTC") == datetime(2024, 4, 1, tzinfo=UTC)


def test_one_period_convention() -> None:
    import pytest

    from meterflow.periods import PeriodError, period_bounds

    assert period_bounds("2026-06-01", "2026-07-01", None) == (date(2026, 6, 1), date(2026, 7, 1))
    assert period_bounds("2026-06", "2026-07", None) == (date(2026, 6, 1), date(2026, 7, 1))
    assert period_bounds(None, None, "2026-12") == (date(2026, 12, 1), date(2027, 1, 1))
    assert period_bounds("2026-06-10", "2026-06-20", None) == (date(2026, 6, 10), date(2026, 6, 20))
    with pytest.raises(PeriodError, match="use --to 2026-07-01 or --period 2026-06"):
        period_bounds("2026-06-01", "2026-06-30", None)
    with pytest.raises(PeriodError, match="use to 2024-03-01 or period 2024-02"):
        period_bounds("2024-02-01", "2024-02-29", None, names=("from", "to", "period"))
    with pytest.raises(PeriodError, match="must be after"):
        period_bounds("2026-07-01", "2026-06-01", None)
    with pytest.raises(PeriodError, match="not both"):
        period_bounds("2026-06-01", None, "2026-06")
    with pytest.raises(PeriodError, match="is not a month"):
        period_bounds(None, None, "2026-06-01")
