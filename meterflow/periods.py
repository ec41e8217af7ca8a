"""Calendar arithmetic shared by every layer: months (billing periods, monthly partitions, monthly charts)
and the UTC instant of a local midnight (period boundaries in the utility's time zone). Pure stdlib."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def month_start(d: date) -> date:
    """The first day of d's month."""
    return date(d.year, d.month, 1)


def add_months(d: date, months: int) -> date:
    """d moved by `months` calendar months; the day is clipped to the target month (Jan 31 + 1 -> Feb 29)."""
    m = d.month - 1 + months
    y = d.year + m // 12
    m = m % 12 + 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def next_month(d: date) -> date:
    """The first day of the month after d's."""
    return add_months(month_start(d), 1)


def previous_month(today: date | None = None) -> tuple[date, date]:
    """[start, end) of the calendar month before today's (UTC today by default)."""
    end = month_start(today or datetime.now(UTC).date())
    return add_months(end, -1), end


def local_midnight(d: date, timezone: str) -> datetime:
    """The UTC instant of local midnight starting day d."""
    return datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(timezone)).astimezone(UTC)
