"""The customer's charts: daily litres, monthly m3 (with the same month a year earlier where there is data)
and hourly litres of the last 7 days. Pure figure builders; texts and formats come from the page's language.

Phones: titles are short, legends sit under the plot (never over the title) and no mode bar is shown.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import plotly.graph_objects as go
import polars as pl

from dashboards.figures import BLUE, FONT, GREY, ORANGE

DARK_GREY = "#4a5563"
RED = "#b3261e"
CONFIG = {"displayModeBar": False, "responsive": True}


class Texts(Protocol):
    """What a figure needs from the page's language (api.pages.i18n.Lang)."""

    @property
    def patterns(self) -> dict[str, str]: ...

    def gettext(self, message: str) -> str: ...

    def month(self, value: date, short: bool = False) -> str: ...


def _layout(fig: go.Figure, lang: Texts, title: str, y_title: str, height: int = 320) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 15}},
        template="plotly_white",
        font={"family": FONT, "size": 12, "color": "#1d2733"},
        separators=lang.patterns["separators"],
        height=height,
        margin={"l": 56, "r": 12, "t": 44, "b": 40},
        legend={"orientation": "h", "yanchor": "top", "y": -0.14, "xanchor": "left", "x": 0.0},
        hoverlabel={"font": {"family": FONT}},
        bargap=0.15,
    )
    fig.update_yaxes(title_text=y_title, rangemode="tozero", separatethousands=True, exponentformat="none")
    return fig


def _no_data(fig: go.Figure, lang: Texts) -> None:
    fig.add_annotation(text=lang.gettext("no data"), showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font={"size": 14, "color": DARK_GREY})


def daily_figure(daily: pl.DataFrame, exchanges: list[date], lang: Texts, last_year: pl.DataFrame | None = None,
                 average: float | None = None) -> go.Figure:
    """Litres per day; a day that also carries days without reading is orange; missing days marked; the day of
    a meter exchange marked with a dashed line; the same days a year earlier (52 weeks) only where they have
    data; the average per day as a line."""
    _ = lang.gettext
    shown = daily.filter(pl.col("in_service"))
    fig = go.Figure()
    days = shown["day"].to_list()
    colors = [ORANGE if g else BLUE for g in shown["after_gap"].to_list()]
    fig.add_bar(x=days, y=[None if v is None else round(v) for v in shown["litres"].to_list()],
                marker_color=colors, name=_("litres per day"),
                hovertemplate=f"%{{x|{lang.patterns['d3_day']}}}: %{{y:,.0f}} L<extra></extra>")
    missing = shown.filter(pl.col("missing"))
    if not missing.is_empty():
        fig.add_scatter(x=missing["day"].to_list(), y=[0] * missing.height, mode="markers", name=_("no reading"),
                        marker={"symbol": "x", "color": DARK_GREY, "size": 8},
                        hovertemplate=f"%{{x|{lang.patterns['d3_day']}}}: {_('no reading')}<extra></extra>")
    if last_year is not None and last_year["litres"].drop_nulls().len() > 0:
        fig.add_scatter(x=[d + timedelta(days=364) for d in last_year["day"].to_list()],
                        y=[None if v is None else round(v) for v in last_year["litres"].to_list()],
                        mode="lines+markers", connectgaps=False, name=_("a year earlier"),
                        line={"color": DARK_GREY, "dash": "dot", "width": 1.5}, marker={"size": 4},
                        hovertemplate=f"%{{x|{lang.patterns['d3_day']}}}: %{{y:,.0f}} L<extra>{_('a year earlier')}"
                                      "</extra>")
    if average is not None:
        fig.add_hline(y=average, line={"color": RED, "dash": "dash", "width": 1},
                      annotation={"text": _("average"), "font": {"size": 11, "color": RED}},
                      annotation_position="top left")
    for day in exchanges:
        if days and days[0] <= day <= days[-1]:
            x = datetime(day.year, day.month, day.day)
            fig.add_vline(x=x, line={"color": DARK_GREY, "dash": "dash", "width": 1.5})
            fig.add_annotation(x=x, y=1.0, yref="paper", text=_("meter exchange"), showarrow=False,
                               xanchor="left", yanchor="bottom", font={"size": 11, "color": DARK_GREY})
    if shown.filter(pl.col("litres").is_not_null()).is_empty():
        _no_data(fig, lang)
    fig.update_xaxes(tickformat=lang.patterns["d3_axis"])
    return _layout(fig, lang, _("Daily use (litres)"), _("litres per day"))


def monthly_figure(monthly: pl.DataFrame, last_year: pl.DataFrame, lang: Texts,
                   exchanges: list[date] | None = None) -> go.Figure:
    """m3 per calendar month as billed (old and new meter added in the month of an exchange, which is marked);
    the same month a year earlier beside it only where it has a figure."""
    _ = lang.gettext
    fig = go.Figure()
    # short horizontal labels fit a phone: the month, and the year under the first one and under January
    labels = [lang.month(m, short=True).replace(" ", "<br>") if i == 0 or m.month == 1
              else lang.month(m, short=True).split(" ")[0] for i, m in enumerate(monthly["month"].to_list())]
    iso = [m.strftime("%Y-%m") for m in monthly["month"].to_list()]
    values = monthly["consumption_m3"].to_list()
    colors = [BLUE if c else GREY for c in monthly["complete"].to_list()]
    fig.add_bar(x=labels, y=values, name=_("this year"), marker_color=colors, customdata=iso,
                hovertemplate="%{x}: %{y:,.3f} m³<extra></extra>")
    prior = dict(zip(last_year["month"].to_list(),
                     last_year["consumption_m3"].to_list(), strict=True))
    earlier = [prior.get(date(m.year - 1, m.month, 1)) for m in monthly["month"].to_list()]
    if any(v is not None for v in earlier):
        fig.add_bar(x=labels, y=earlier, name=_("same month last year"), marker_color=DARK_GREY,
                    hovertemplate="%{x}: %{y:,.3f} m³<extra>" + _("a year earlier") + "</extra>")
    for day in exchanges or []:
        month = date(day.year, day.month, 1)
        if month in monthly["month"].to_list():
            i = monthly["month"].to_list().index(month)
            fig.add_annotation(x=labels[i], y=values[i] or 0, text=_("meter exchange"), showarrow=True, arrowhead=2,
                               ax=0, ay=-28, font={"size": 11, "color": DARK_GREY})
    if all(v is None for v in values):
        _no_data(fig, lang)
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="category", tickangle=0)
    _layout(fig, lang, _("Monthly use (m³)"), _("m³ per month"))
    fig.update_layout(legend={"y": -0.2}, margin={"b": 64})
    return fig


def hourly_figure(hourly: pl.DataFrame, lang: Texts) -> go.Figure:
    """Litres per hour of the last 7 days."""
    _ = lang.gettext
    fig = go.Figure()
    hours = [h.replace(tzinfo=None) for h in hourly["hour"].to_list()]
    fig.add_bar(x=hours, y=[None if v is None else round(v, 1) for v in hourly["litres"].to_list()],
                marker_color=BLUE, name=_("litres per hour"),
                hovertemplate=f"%{{x|{lang.patterns['d3_hour']}}}: %{{y:,.1f}} L<extra></extra>")
    if hourly.filter(pl.col("litres").is_not_null()).is_empty():
        _no_data(fig, lang)
    fig.update_xaxes(tickformat=lang.patterns["d3_axis"])
    return _layout(fig, lang, _("Hourly use, last 7 days (litres)"), _("litres per hour"), height=280)


def figure_json(fig: go.Figure) -> str:
    """Figure JSON with its plotly config, safe inside <script type="application/json">."""
    body: dict[str, Any] = json.loads(fig.to_json(validate=False))
    body["config"] = CONFIG
    return json.dumps(body).replace("</", "<\\/")
