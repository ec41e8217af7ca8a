"""Plain-language texts of alerts, for customers (e-mail, SMS) and operators."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

LEAK_KINDS = ("leak", "burst", "meter_alarm:leak", "meter_alarm:burst")
TITLES = {
    "leak": "water has been running without a break, day and night",
    "night_flow": "water is running at night",
    "burst": "an unusually large flow",
    "backflow": "the meter ran backwards",
    "stuck": "the meter has shown no use",
    "silent": "the meter has not reported",
}


def describe(meter_id: str, kind: str, first_seen: datetime, rate_l_h: float | None, tz: str,
             sms: bool = False) -> str:
    """Customer message: what, how big (L/h and litres per day) and since when (local time)."""
    since = first_seen.astimezone(ZoneInfo(tz)).strftime("%d.%m.%Y %H:%M")
    if kind.startswith("meter_alarm:"):
        what = f"your meter reports '{kind.split(':', 1)[1]}'"
    else:
        what = TITLES.get(kind, kind)
    size = ""
    if rate_l_h is not None and kind in ("leak", "burst"):
        size = f" at about {rate_l_h:.0f} L/h ({rate_l_h * 24:.0f} litres per day)"
    if sms:
        return f"Meter {meter_id}: {what}{size} since {since}. Please check taps, toilets and pipes."
    advice = ("A flow that never stops usually means a leak: a dripping tap, a running toilet or a leaking pipe. "
              "Please check them; close the main valve if you cannot find the cause and call a plumber.")
    if kind not in LEAK_KINDS:
        advice = "Our team will look into it; you need not do anything unless we contact you."
    return f"Water meter {meter_id}: {what}{size} since {since} (local time).\n\n{advice}"
