from datetime import UTC, datetime, timedelta

from meterflow.plausibility import PlausibilitySettings, check_index, check_time


def test_index_rules() -> None:
    assert check_index(12.5, 5) is None
    assert check_index(None) is None
    assert check_index(float("inf")).code == "not_finite"
    assert check_index(float("nan")).code == "not_finite"
    assert check_index(-5).code == "negative_index"
    assert check_index(100000.0, 5).code == "beyond_register"
    assert check_index(99999.999, 5) is None
    assert check_index(1e308).code == "beyond_register"
    assert check_index(True).code == "not_a_number"


def test_time_window() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert check_time(now, now) is None
    assert check_time(datetime(1999, 12, 31, tzinfo=UTC), now).code == "time_out_of_window"
    assert check_time(now + timedelta(days=3), now).code == "time_in_future"
    assert check_time(now + timedelta(hours=1), now) is None
    assert check_time(datetime(2026, 1, 1), now).code == "naive_time"
    tight = PlausibilitySettings(future_tolerance_hours=0)
    assert check_time(now + timedelta(minutes=1), now, tight).code == "time_in_future"
