"""Plotly figure builders: pure functions from polars DataFrames (storage.chart_queries) to figures.

Units: volumes in m3 (fleet, districts, months) or L (a customer's day, an hour), flows in L/h.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import plotly.graph_objects as go
import plotly.io as pio
import polars as pl

from dashboards.labels import QUALITY_LABELS
from meterflow.messages import N_

BLUE = "#1f6fb2"
LIGHT_BLUE = "#9cc3e6"
GREY = "#b8bec6"
RED = "#c8412b"
ORANGE = "#e39b26"
GREEN = "#2e9d5b"
PALETTE = ["#1f6fb2", "#e39b26", "#2e9d5b", "#c8412b", "#7b57a8", "#3aa6b9", "#8c6d46", "#d56fa6"]
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"
# plotly's "plotly_white" template as plain JSON, for the figures built as dicts
TEMPLATE: dict[str, Any] = pio.templates["plotly_white"].to_plotly_json()


class Texts(Protocol):
    """What a figure needs from the page's language (api.pages.i18n.Lang): its words and d3 formats."""

    @property
    def patterns(self) -> dict[str, str]: ...

    def gettext(self, message: str) -> str: ...


@dataclass(frozen=True)
class English:
    """The figures' own words and formats, for callers without a page language (CLI, benches)."""

    patterns: dict[str, str] = field(default_factory=lambda: {
        "d3_day": "%d %b %Y", "d3_axis": "%d %b", "d3_hour": "%d %b %H:00", "separators": ".,"})

    def gettext(self, message: str) -> str:
        return message


ENGLISH = English()


def _layout(fig: go.Figure, title: str, height: int = 360, **kwargs: Any) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 16}},
        template="plotly_white",
        font={"family": FONT, "size": 12, "color": "#1d2733"},
        height=height,
        margin={"l": 60, "r": 24, "t": 56, "b": 44},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        hoverlabel={"font": {"family": FONT}},
        **kwargs,
    )
    return fig


def _empty(fig: go.Figure, message: str = "no data for this period") -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font={"size": 14, "color": "#6b7785"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _runs(keys: Sequence[Any], flags: Sequence[bool]) -> list[tuple[Any, Any]]:
    """Contiguous runs of True in flags as (first key, last key)."""
    runs: list[tuple[Any, Any]] = []
    first: Any = None
    prev: Any = None
    for key, flag in zip(keys, flags, strict=True):
        if flag and first is None:
            first = key
        if not flag and first is not None:
            runs.append((first, prev))
            first = None
        prev = key
    if first is not None:
        runs.append((first, prev))
    return runs


def _shade_gaps(fig: go.Figure, runs: list[tuple[Any, Any]], step: timedelta, row: int | None = None,
                max_runs: int = 60) -> None:
    for a, b in runs[:max_runs]:
        lo = datetime(a.year, a.month, a.day) if type(a) is date else a
        hi = (datetime(b.year, b.month, b.day) if type(b) is date else b) + step
        kwargs: dict[str, Any] = {"row": row, "col": 1} if row else {}
        fig.add_vrect(x0=lo, x1=hi, fillcolor=GREY, opacity=0.28, line_width=0, layer="below", **kwargs)


# --------------------------------------------------------------------------------------------- fleet
# Fleet and meter figures are plain dicts (the JSON plotly.js reads): building plotly.graph_objects with
# their validation cost ~25 ms per figure, which made the pages slow (issue 19); a dict costs microseconds.


def _bar(**trace: Any) -> dict[str, Any]:
    return {"type": "bar", **trace}


def _scatter(**trace: Any) -> dict[str, Any]:
    return {"type": "scatter", **trace}


def _wall(values: Sequence[Any]) -> list[Any]:
    """Dates and times as plotly.js reads them: wall-clock ISO strings (plotly.js ignores UTC offsets)."""
    out: list[Any] = []
    for v in values:
        if isinstance(v, datetime):
            out.append(v.replace(tzinfo=None).isoformat(sep=" "))
        elif isinstance(v, date):
            out.append(v.isoformat())
        else:
            out.append(v)
    return out


def _gap_shapes(runs: list[tuple[Any, Any]], step: timedelta, yref: str = "paper", y0: float = 0.0,
                y1: float = 1.0, max_runs: int = 60) -> list[dict[str, Any]]:
    shapes = []
    for a, b in runs[:max_runs]:
        lo = datetime(a.year, a.month, a.day) if type(a) is date else a.replace(tzinfo=None)
        hi = (datetime(b.year, b.month, b.day) if type(b) is date else b.replace(tzinfo=None)) + step
        shapes.append({"type": "rect", "xref": "x", "yref": yref, "x0": lo.isoformat(sep=" "),
                       "x1": hi.isoformat(sep=" "), "y0": y0, "y1": y1, "fillcolor": GREY, "opacity": 0.28,
                       "line": {"width": 0}, "layer": "below"})
    return shapes


#: the charts' titles per dimension (a title is one message, so each language can word it whole)
COVERAGE_TITLES = {"district": (N_("Reading coverage by district"), N_("Meters heard in the last 24 h, by district")),
                   "gateway": (N_("Reading coverage by gateway"), N_("Meters heard in the last 24 h, by gateway"))}
#: storage's age buckets (chart_queries.AGE_BUCKETS) that read differently in another language
AGE_LABELS = {"1-7 d": N_("1-7 d"), "> 7 d": N_("> 7 d"), "never": N_("never")}


def coverage_figure(df: pl.DataFrame, label: str, lang: Texts = ENGLISH) -> dict[str, Any]:
    """Share of meters heard in the last 24 h per district or gateway (horizontal bars, %)."""
    _ = lang.gettext
    title, empty_title = (_(t) for t in COVERAGE_TITLES[label])
    if df.is_empty():
        return _dict_empty(empty_title, _("no data for this period"), lang=lang)
    df = df.sort("share", descending=True)
    names = df[df.columns[0]].to_list()
    pct = [round(100 * s, 1) for s in df["share"].to_list()]
    heard, meters = df["heard"].to_list(), df["meters"].to_list()
    colors = [GREEN if p >= 95 else ORANGE if p >= 80 else RED for p in pct]
    heard_word, heard_hover = _("heard in 24 h"), _("heard")
    not_heard, silent = _("not heard"), _("%(n)s silent")
    data = [
        _bar(y=names, x=pct, orientation="h", marker={"color": colors}, name=heard_word,
             text=[f"{p:.0f} % ({h}/{m})" for p, h, m in zip(pct, heard, meters, strict=True)],
             textposition="inside", insidetextanchor="start", textfont={"color": "#fff"},
             hovertemplate=f"%{{y}}: %{{x:.1f}} % {heard_hover}<extra></extra>"),
        _bar(y=names, x=[round(100 - p, 1) for p in pct], orientation="h", marker={"color": "#e6e9ed"},
             name=not_heard, text=[silent % {"n": m - h} if m - h else "" for h, m in zip(heard, meters, strict=True)],
             textposition="inside", insidetextanchor="end", textfont={"color": "#444"},
             hovertemplate=f"%{{y}}: %{{x:.1f}} % {not_heard}<extra></extra>"),
    ]
    layout = _dict_layout(title, max(260, 60 + 26 * df.height), lang, showlegend=False, barmode="stack")
    layout["xaxis"] = {"title": {"text": _("meters heard in the last 24 h (%)")}, "range": [0, 105]}
    layout["yaxis"] = {"autorange": "reversed", "automargin": True}
    return {"data": data, "layout": layout}


def freshness_figure(df: pl.DataFrame, lang: Texts = ENGLISH) -> dict[str, Any]:
    """Meters by age of their last reading."""
    _ = lang.gettext
    colors = [GREEN, GREEN, ORANGE, RED, RED, GREY]
    ages = [_(AGE_LABELS[a]) if a in AGE_LABELS else a for a in df["age"].to_list()]
    hover = _("last reading %(age)s ago: %(meters)s meters") % {"age": "%{x}", "meters": "%{y}"}
    data = [_bar(x=ages, y=df["meters"].to_list(), marker={"color": colors[: df.height]},
                 text=df["meters"].to_list(), textposition="outside", hovertemplate=hover + "<extra></extra>")]
    layout = _dict_layout(_("Data freshness: age of each meter's last reading"), 320, lang, showlegend=False)
    layout["xaxis"] = {"title": {"text": _("age of the last reading")}}
    layout["yaxis"] = {"title": {"text": _("meters")}}
    return {"data": data, "layout": layout}


def alerts_by_kind_figure(df: pl.DataFrame, label: Callable[[str], str] = str,
                          lang: Texts = ENGLISH) -> dict[str, Any]:
    """Open alerts per kind: estimated volume lost (m3) as bars, the count as text."""
    _ = lang.gettext
    if df.is_empty():
        return _dict_empty(_("Open alerts by kind"), _("no open alerts"), lang=lang)
    open_text = _("%(n)s open")
    hover = _("%(kind)s: %(n)s open, ~%(m3)s m³ lost") % {"kind": "%{x}", "n": "%{customdata}", "m3": "%{y:.1f}"}
    data = [_bar(x=[label(k) for k in df["kind"].to_list()], y=[v or 0 for v in df["volume_lost_m3"].to_list()],
                 marker={"color": RED}, text=[open_text % {"n": n} for n in df["alerts"].to_list()],
                 textposition="outside", customdata=df["alerts"].to_list(), name=_("estimated volume lost"),
                 hovertemplate=hover + "<extra></extra>")]
    layout = _dict_layout(_("Open alerts by kind: estimated volume lost (m³)"), 340, lang, showlegend=False)
    layout["yaxis"] = {"title": {"text": _("estimated volume lost (m³)")}}
    return {"data": data, "layout": layout}


def _district_lines(df: pl.DataFrame, column: str, hover: str) -> list[dict[str, Any]]:
    traces = []
    for i, (name, part) in enumerate(df.partition_by("district", as_dict=True, maintain_order=True).items()):
        traces.append(_scatter(x=_wall(part["day"].to_list()), y=part[column].to_list(), mode="lines+markers",
                               name=str(name[0]), line={"color": PALETTE[i % len(PALETTE)], "width": 2},
                               marker={"size": 4}, hovertemplate=hover))
    return traces


def district_consumption_figure(df: pl.DataFrame, lang: Texts = ENGLISH) -> dict[str, Any]:
    """Daily consumption (m3/day) per district (customer meters)."""
    _ = lang.gettext
    title = _("District (DMA) daily consumption (m³/day)")
    if df.is_empty():
        return _dict_empty(title, _("no data for this period"), lang=lang)
    layout = _dict_layout(title, lang=lang)
    layout["yaxis"] = {"title": {"text": _("consumption (m³/day)")}, "rangemode": "tozero"}
    layout["xaxis"] = {"tickformat": lang.patterns["d3_axis"]}
    hover = f"%{{x|{lang.patterns['d3_day']}}}: %{{y:,.1f}} m³<extra>%{{fullData.name}}</extra>"
    return {"data": _district_lines(df, "consumption_m3", hover), "layout": layout}


def night_flow_figure(df: pl.DataFrame, lang: Texts = ENGLISH) -> dict[str, Any]:
    """Night flow 02:00-04:00 (L/h) per district, summed over customer meters."""
    _ = lang.gettext
    title = _("District night flow 02:00-04:00 (L/h)")
    part_df = df.filter(pl.col("night_flow_l_h").is_not_null()) if not df.is_empty() else df
    if part_df.is_empty():
        return _dict_empty(title, _("no hourly data for night flow"), lang=lang)
    layout = _dict_layout(title, lang=lang)
    layout["yaxis"] = {"title": {"text": _("night flow (L/h)")}, "rangemode": "tozero"}
    layout["xaxis"] = {"tickformat": lang.patterns["d3_axis"]}
    hover = f"%{{x|{lang.patterns['d3_axis']}}}: %{{y:,.0f}} l/h<extra>%{{fullData.name}}</extra>"
    return {"data": _district_lines(part_df, "night_flow_l_h", hover), "layout": layout}


def verification_figure(df: pl.DataFrame, lang: Texts = ENGLISH) -> dict[str, Any]:
    """Meters whose verification expires, per week."""
    _ = lang.gettext
    if df.is_empty():
        return _dict_empty(_("Verification expiring within 90 days"), _("no verification expires within 90 days"),
                           lang=lang)
    meters = _("meters")
    hover = _("week of %(day)s: %(n)s meters") % {"day": f"%{{x|{lang.patterns['d3_day']}}}", "n": "%{y}"}
    data = [_bar(x=_wall(df["week"].to_list()), y=df["meters"].to_list(), marker={"color": ORANGE}, name=meters,
                 hovertemplate=hover + "<extra></extra>")]
    layout = _dict_layout(_("Verification expiring within 90 days (meters per week)"), 320, lang, showlegend=False)
    layout["yaxis"] = {"title": {"text": meters}}
    layout["xaxis"] = {"title": {"text": _("week of expiry")}, "tickformat": lang.patterns["d3_axis"]}
    return {"data": data, "layout": layout}


def dead_letters_figure(df: pl.DataFrame, lang: Texts = ENGLISH) -> dict[str, Any]:
    """Unresolved dead letters per reason."""
    _ = lang.gettext
    if df.is_empty():
        return _dict_empty(_("Dead letters by reason"), _("no unresolved dead letters"), lang=lang)
    frames = _("frames")
    data = [_bar(y=df["error_code"].to_list(), x=df["frames"].to_list(), orientation="h", marker={"color": GREY},
                 text=df["frames"].to_list(), textposition="auto",
                 hovertemplate=f"%{{y}}: %{{x}} {frames}<extra></extra>")]
    layout = _dict_layout(_("Dead letters by reason (unresolved)"), max(240, 80 + 28 * df.height), lang,
                          showlegend=False)
    layout["yaxis"] = {"autorange": "reversed", "automargin": True}
    layout["xaxis"] = {"title": {"text": _("unresolved frames")}}
    return {"data": data, "layout": layout}


# --------------------------------------------------------------------------------------------- meter


def meter_figure(daily: pl.DataFrame, last_year: pl.DataFrame, alerts: pl.DataFrame, vee: pl.DataFrame,
                 meter_id: str, label: Callable[[str], str] = str, lang: Texts = ENGLISH) -> dict[str, Any]:
    """Index (m3), daily consumption (m3) with the same period last year, and alarms / VEE flags on one
    time axis (three stacked panels); missing days shaded grey."""
    _ = lang.gettext
    day_fmt = lang.patterns["d3_day"]
    index, consumption, last_year_, no_data = _("index"), _("consumption"), _("last year"), _("no data")
    days = _wall(daily["day"].to_list())
    colors = [ORANGE if g else BLUE for g in daily["after_gap"].to_list()]
    data: list[dict[str, Any]] = [
        _scatter(x=days, y=daily["index_m3"].to_list(), mode="lines+markers", name=index, connectgaps=False,
                 line={"color": BLUE, "width": 2}, marker={"size": 3}, xaxis="x", yaxis="y",
                 hovertemplate=f"%{{x|{day_fmt}}}: %{{y:,.3f}} m³<extra>{index}</extra>"),
        _bar(x=days, y=daily["consumption_m3"].to_list(), name=consumption, marker={"color": colors},
             xaxis="x", yaxis="y2",
             hovertemplate=f"%{{x|{day_fmt}}}: %{{y:,.3f}} m³<extra>{consumption}</extra>"),
    ]
    if not last_year.is_empty():
        shifted = _wall([d + timedelta(days=364) for d in last_year["day"].to_list()])
        data.append(_scatter(x=shifted, y=last_year["consumption_m3"].to_list(), mode="lines",
                             name=_("same period last year"), line={"color": "#555", "width": 1.5, "dash": "dot"},
                             xaxis="x", yaxis="y2", customdata=_wall(last_year["day"].to_list()),
                             hovertemplate=f"%{{customdata|{day_fmt}}}: %{{y:,.3f}} m³<extra>{last_year_}</extra>"))
    missing = daily.filter(pl.col("missing"))
    if not missing.is_empty():
        data.append(_scatter(x=_wall(missing["day"].to_list()), y=[0] * missing.height, mode="markers",
                             name=no_data, marker={"symbol": "x", "color": "#6b7785", "size": 7}, xaxis="x",
                             yaxis="y2", hovertemplate=f"%{{x|{day_fmt}}}: {no_data}<extra></extra>"))
    lanes = 0
    for row in alerts.iter_rows(named=True):
        lane = _("alarm: %(kind)s") % {"kind": label(row["kind"])}
        color = RED if row["severity"] == "critical" else ORANGE
        state = _("open") if row["state"] == "open" else _("closed")
        data.append(_scatter(x=_wall([row["first_seen"], row["last_seen"]]), y=[lane, lane], mode="lines+markers",
                             line={"color": color, "width": 8}, marker={"size": 8, "color": color},
                             showlegend=False, name=lane, xaxis="x", yaxis="y3",
                             hovertemplate=(f"{label(row['kind'])} ({state})"
                                            f"<br>%{{x|{day_fmt} %H:%M}}<extra></extra>")))
        lanes += 1
    for row in vee.iter_rows(named=True):
        if row["quality"] == "ACTUAL" and not row["flags"]:
            continue
        quality = _(QUALITY_LABELS[row["quality"]]) if row["quality"] in QUALITY_LABELS else row["quality"].lower()
        lane = f"VEE: {quality}"
        data.append(_scatter(x=_wall([row["period_start"], row["period_end"]]), y=[lane, lane], mode="lines+markers",
                             line={"color": "#7b57a8", "width": 8}, marker={"size": 8}, showlegend=False, name=lane,
                             xaxis="x", yaxis="y3",
                             hovertemplate=(f"{lane} · {row['method']}<br>{row['flags'] or ''}"
                                            f"<br>%{{x|{day_fmt}}}<extra></extra>")))
        lanes += 1
    if not lanes:
        data.append(_scatter(x=[days[0], days[-1]] if days else [], y=[_("none")] * 2 if days else [], mode="lines",
                             line={"color": "rgba(0,0,0,0)"}, showlegend=False, hoverinfo="skip", xaxis="x",
                             yaxis="y3"))
    layout = _dict_layout(_("Meter %(meter)s: index, daily consumption and events") % {"meter": meter_id}, 660,
                          lang, bargap=0.15)
    # three panels on one x axis, top to bottom: index 34 %, consumption 46 %, events 20 % (5 % gaps)
    layout.update({
        "xaxis": {"anchor": "y3", "domain": [0.0, 1.0], "tickformat": lang.patterns["d3_axis"]},
        "yaxis": {"domain": [0.6733, 1.0], "title": {"text": "m³"}},
        "yaxis2": {"domain": [0.2367, 0.6233], "title": {"text": _("m³/day")}, "rangemode": "tozero"},
        "yaxis3": {"domain": [0.0, 0.1867], "automargin": True},
        "annotations": [
            {"text": t, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5, "y": y, "xanchor": "center",
             "yanchor": "bottom", "font": {"size": 14}}
            for t, y in ((_("Index (m³)"), 1.0), (_("Daily consumption (m³/day)"), 0.6233),
                         (_("Alarms and VEE flags"), 0.1867))],
        "shapes": _gap_shapes(_runs(daily["day"].to_list(), daily["missing"].to_list()), timedelta(days=1)),
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.06, "xanchor": "left", "x": 0.0},
        "margin": {"l": 60, "r": 24, "t": 56, "b": 70},
    })
    return {"data": data, "layout": layout}


def meter_hourly_figure(hourly: pl.DataFrame, meter_id: str, lang: Texts = ENGLISH) -> dict[str, Any]:
    """Hourly consumption (L) with missing hours shaded."""
    _ = lang.gettext
    title = _("Meter %(meter)s: hourly consumption (L), gaps shaded") % {"meter": meter_id}
    hours = hourly["hour"].to_list()
    data = [_bar(x=_wall(hours), y=hourly["consumption_l"].to_list(), marker={"color": BLUE}, name=_("consumption"),
                 hovertemplate=f"%{{x|{lang.patterns['d3_hour']}}}: %{{y:,.0f}} l<extra></extra>")]
    layout = _dict_layout(title, 320, lang, showlegend=False, bargap=0.05)
    layout["yaxis"] = {"title": {"text": _("L per hour")}, "rangemode": "tozero"}
    layout["xaxis"] = {"tickformat": lang.patterns["d3_hour"]}
    layout["shapes"] = _gap_shapes(_runs(hours, hourly["missing"].to_list()), timedelta(hours=1))
    if hourly["missing"].all():
        layout["annotations"] = [{"text": _("no hourly data in this period"), "showarrow": False, "xref": "paper",
                                  "yref": "paper", "x": 0.5, "y": 0.5, "font": {"size": 14, "color": "#6b7785"}}]
    return {"data": data, "layout": layout}


# --------------------------------------------------------------------------------------------- water balance


def balance_ranking_figure(ranking: pl.DataFrame, lang: Texts = ENGLISH) -> dict[str, Any]:
    """Districts by non-revenue water (% of input), worst first; the m3/day as text."""
    _ = lang.gettext
    title = _("Non-revenue water by district (% of input)")
    if ranking.is_empty():
        return _dict_empty(title, _("no district has an inlet meter"), lang=lang)
    comma = lang.patterns["separators"][0]
    pct = [round(v, 1) if v is not None else None for v in ranking["nrw_pct"].to_list()]
    colors = [RED if (v or 0) >= 25 else ORANGE if (v or 0) >= 12 else GREEN for v in pct]
    data = [{"type": "bar", "orientation": "h", "y": ranking["district"].to_list(), "x": pct,
             "marker": {"color": colors}, "name": _("non-revenue water"),
             "text": [(f"{p:.1f} % · {d:.1f} " + _("m³/day")).replace(".", comma)
                      for p, d in zip(pct, ranking["nrw_m3_day"].to_list(), strict=True)],
             "textposition": "auto",
             "hovertemplate": "%{y}: %{x:.1f} % " + _("of input not billed") + "<extra></extra>"}]
    layout = _dict_layout(title, max(240, 80 + 34 * ranking.height), lang, showlegend=False)
    layout["xaxis"] = {"title": {"text": _("non-revenue water (% of input)")}, "rangemode": "tozero"}
    layout["yaxis"] = {"autorange": "reversed", "automargin": True}
    return {"data": data, "layout": layout}


def balance_figure(df: pl.DataFrame, district: str, lang: Texts = ENGLISH) -> dict[str, Any]:
    """One district: daily input and billed volumes (m3/day) and the input's minimum night flow (L/h)."""
    _ = lang.gettext
    title = _("%(district)s: input, billed and night flow") % {"district": district}
    if df.is_empty():
        return _dict_empty(title, _("no data for this period"), lang=lang)
    days = [d.isoformat() for d in df["day"].to_list()]
    day = f"%{{x|{lang.patterns['d3_axis']}}}"
    billed, not_billed, input_, at_night = _("billed"), _("not billed"), _("input"), _("at night")
    data = [
        {"type": "bar", "x": days, "y": df["billed_m3"].to_list(), "name": _("billed (customer meters)"),
         "marker": {"color": LIGHT_BLUE}, "hovertemplate": f"{day}: %{{y:,.1f}} m³ {billed}<extra></extra>"},
        {"type": "bar", "x": days, "y": [None if v is None else max(v, 0.0) for v in df["nrw_m3"].to_list()],
         "name": _("non-revenue"), "marker": {"color": RED},
         "hovertemplate": f"{day}: %{{y:,.1f}} m³ {not_billed}<extra></extra>"},
        {"type": "scatter", "mode": "lines+markers", "x": days, "y": df["input_m3"].to_list(), "name": input_,
         "line": {"color": BLUE, "width": 2}, "marker": {"size": 4},
         "hovertemplate": f"{day}: %{{y:,.1f}} m³ {input_}<extra></extra>"},
        {"type": "scatter", "mode": "lines", "x": days, "y": df["mnf_l_h"].to_list(), "yaxis": "y2",
         "name": _("min. night flow (l/h)"), "line": {"color": ORANGE, "width": 2, "dash": "dot"},
         "hovertemplate": f"{day}: %{{y:,.0f}} l/h {at_night}<extra></extra>"},
    ]
    layout = _dict_layout(title, 380, lang, barmode="stack", bargap=0.15)
    layout["xaxis"] = {"tickformat": lang.patterns["d3_axis"]}
    layout["yaxis"] = {"title": {"text": _("m³/day")}, "rangemode": "tozero"}
    layout["yaxis2"] = {"title": {"text": "l/h"}, "overlaying": "y", "side": "right", "rangemode": "tozero",
                        "showgrid": False}
    layout["margin"] = {"l": 60, "r": 60, "t": 48, "b": 84}
    layout["legend"] = {"orientation": "h", "yanchor": "top", "y": -0.14, "xanchor": "left", "x": 0.0}
    return {"data": data, "layout": layout}


def _dict_layout(title: str, height: int = 360, lang: Texts = ENGLISH, **kwargs: Any) -> dict[str, Any]:
    """The layout of _layout as a plain dict: figures built as dicts skip plotly's validation (fast pages)."""
    return {
        "title": {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 16}},
        "template": TEMPLATE,
        "separators": lang.patterns["separators"],
        "font": {"family": FONT, "size": 12, "color": "#1d2733"},
        "height": height,
        "margin": {"l": 60, "r": 24, "t": 56, "b": 44},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        "hoverlabel": {"font": {"family": FONT}},
        **kwargs,
    }


def _dict_empty(title: str, message: str = "no data for this period", height: int = 320,
                lang: Texts = ENGLISH) -> dict[str, Any]:
    layout = _dict_layout(title, height, lang)
    layout["annotations"] = [{"text": message, "showarrow": False, "xref": "paper", "yref": "paper", "x": 0.5,
                              "y": 0.5, "font": {"size": 14, "color": "#6b7785"}}]
    layout["xaxis"] = {"visible": False}
    layout["yaxis"] = {"visible": False}
    return {"data": [], "layout": layout}
