"""Languages of the pages: a gettext catalogue per locale (api/locales/<lang>/LC_MESSAGES/messages.po, read
with Babel) and the locale's number and date formats, so a Polish reader sees 1 471,5 and 01.03.2026.

The locale of a request is `?lang=pl|en` when given, else settings `api.locale`. Templates call `_()` /
`{% trans %}` and the filters `num`, `day`, `when`, `month`; Python code asks `for_locale(lang)`.
"""

from __future__ import annotations

import io
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations
from starlette.requests import Request

LOCALES = ("pl", "en")
LOCALE_DIR = Path(__file__).resolve().parents[1] / "locales"

#: per locale: (day, date and time, month, plotly hover day, plotly axis day, plotly number separators)
PATTERNS: dict[str, dict[str, str]] = {
    "pl": {"day": "dd.MM.yyyy", "when": "dd.MM.yyyy HH:mm", "month": "LLLL yyyy", "month_short": "LLL yyyy",
           "d3_day": "%d.%m.%Y", "d3_axis": "%d.%m", "d3_hour": "%d.%m %H:00", "separators": ", "},
    "en": {"day": "d MMM yyyy", "when": "d MMM yyyy, HH:mm", "month": "MMMM yyyy", "month_short": "MMM yyyy",
           "d3_day": "%d %b %Y", "d3_axis": "%d %b", "d3_hour": "%d %b %H:00", "separators": ".,"},
}

_current: ContextVar[str] = ContextVar("meterflow_locale", default="en")
_tz: ContextVar[str] = ContextVar("meterflow_tz", default="Europe/Warsaw")


@cache
def catalogue(lang: str) -> NullTranslations:
    """The compiled catalogue of a locale (compiled in memory from its .po file once per process)."""
    po = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if not po.is_file():
        return NullTranslations()
    with po.open("rb") as fh:
        messages = read_po(fh, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, messages)
    buf.seek(0)
    return Translations(buf)


@dataclass(frozen=True)
class Lang:
    """A locale with its translations and formats, in the utility's time zone."""

    code: str
    tz: str

    @property
    def patterns(self) -> dict[str, str]:
        return PATTERNS[self.code]

    def gettext(self, message: str) -> str:
        return catalogue(self.code).gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return catalogue(self.code).ngettext(singular, plural, n)

    def num(self, value: float | int | None, digits: int = 0, empty: str = "—") -> str:
        """A number with the locale's decimal mark and a (non-breaking) space or comma between thousands."""
        if value is None:
            return empty
        pattern = "#,##0" + ("." + "0" * digits if digits > 0 else "")
        text: str = format_decimal(value, format=pattern, locale=self.code, group_separator=True)
        if self.code == "pl" and abs(value) >= 1000 and "\u00a0" not in text:
            # CLDR leaves 4-digit Polish numbers ungrouped; the utilities' bills group them (1 471)
            text = format_decimal(value, format=pattern, locale="fr_FR", group_separator=True).replace(
                "\u202f", "\u00a0")
        return text.replace("\u202f", "\u00a0")

    def day(self, value: date | datetime | None) -> str:
        if value is None:
            return "—"
        if isinstance(value, datetime):
            value = value.astimezone(ZoneInfo(self.tz)).date()
        return str(format_date(value, self.patterns["day"], locale=self.code))

    def when(self, value: datetime | None) -> str:
        if value is None:
            return "—"
        return str(format_datetime(value, self.patterns["when"], tzinfo=ZoneInfo(self.tz), locale=self.code))

    def month(self, value: date, short: bool = False) -> str:
        text = str(format_date(value, self.patterns["month_short" if short else "month"], locale=self.code))
        return text[:1].upper() + text[1:]

    @property
    def name(self) -> str:
        return str(Locale.parse(self.code).get_display_name(self.code))


def for_locale(code: str | None, tz: str = "Europe/Warsaw") -> Lang:
    return Lang(code if code in LOCALES else LOCALES[0], tz)


def request_locale(request: Request, default: str) -> str:
    """`?lang=` when it names a known locale, else the configured default."""
    asked = request.query_params.get("lang")
    if asked in LOCALES:
        return str(asked)
    return default if default in LOCALES else LOCALES[0]


def _gettext(message: str) -> str:
    return catalogue(_current.get()).gettext(message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return catalogue(_current.get()).ngettext(singular, plural, n)


def install(env: jinja2.Environment) -> None:
    """Add gettext (`_`, `{% trans %}`) following `activate`, and the locale's number/date filters."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]

    def lang_now(fn_name: str) -> Any:
        def apply(value: Any, *args: Any) -> str:
            return str(getattr(Lang(_current.get(), _tz.get()), fn_name)(value, *args))

        return apply

    for name in ("num", "day", "when", "month"):
        env.filters[name] = lang_now(name)


def activate(lang: Lang) -> Lang:
    """Make `lang` the language of the templates rendered next in this thread or task."""
    _current.set(lang.code)
    _tz.set(lang.tz)
    return lang


def activate_request(request: Request, default: str, tz: str) -> Lang:
    """The language of this request (`?lang=`, else `default`), made current for the templates."""
    return activate(Lang(request_locale(request, default), tz))
