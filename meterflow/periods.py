"""Calendar arithmetic shared by every layer: months (billing periods, monthly partitions, monthly charts)
and the UTC instant of a local midnight (period boundaries in the utility's time zone). Pure stdlib."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
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


class PeriodError(ValueError):
    """A period given the wrong way; the message says how to give it."""


def parse_day(value: str, name: str) -> date:
    """YYYY-MM-DD, or YYYY-MM meaning the first day of that month (so --from 2026-06 --to 2026-07 is June)."""
    text = value.strip()
    try:
        if len(text) == 7:
            return date.fromisoformat(text + "-01")
        return date.fromisoformat(text)
    except ValueError as exc:
        raise PeriodError(f"{name} {value!r} is not a date; use YYYY-MM-DD (or YYYY-MM for the 1st of a month), "
                          "e.g. 2026-06-01") from exc


def period_bounds(date_from: str | None, date_to: str | None, period: str | None, *, names: tuple[str, str, str] = (
        "--from", "--to", "--period")) -> tuple[date, date]:
    """The one period convention of every command and the API: [from, to) with `from` inclusive and `to`
    exclusive, or a calendar month YYYY-MM. A `to` on a month's last day is refused with a hint: it would
    silently leave that day (and every period ending after it) out."""
    f_name, t_name, p_name = names
    if period is not None:
        if date_from is not None or date_to is not None:
            raise PeriodError(f"give either {p_name} YYYY-MM or {f_name}/{t_name}, not both")
        text = period.strip()
        if len(text) != 7:
            raise PeriodError(f"{p_name} {period!r} is not a month; use YYYY-MM, e.g. 2026-06")
        start = parse_day(text, p_name)
        return start, next_month(start)
    if date_from is None or date_to is None:
        raise PeriodError(f"give {p_name} YYYY-MM, or both {f_name} (inclusive) and {t_name} (exclusive)")
    start, end = parse_day(date_from, f_name), parse_day(date_to, t_name)
    if end <= start:
        raise PeriodError(f"{t_name} {end} must be after {f_name} {start} ({t_name} is exclusive)")
    last_day = calendar.monthrange(end.year, end.month)[1]
    if end.day == last_day and len(date_to.strip()) == 10:
        following = end + timedelta(days=1)
        raise PeriodError(
            f"{t_name} is exclusive: {t_name} {end} leaves out {end} itself and every period ending after it. "
            f"For the month use {t_name} {following} or {p_name} {end:%Y-%m}")
    return start, end
