"""Plotly figure builders: pure functions from polars DataFrames (storage.chart_queries) to figures.

Units: volumes in m3 (fleet, districts, months) or L (a customer's day, an hour), flows in L/h.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

BLUE = "#1f6fb2"
LIGHT_BLUE = "#9cc3e6"
GREY = "#b8bec6"
RED = "#c8412b"
ORANGE = "#e39b26"
GREEN = "#2e9d5b"
PALETTE = ["#1f6fb2", "#e39b26", "#2e9d5b", "#c8412b", "#7b57a8", "#3aa6b9", "#8c6d46", "#d56fa6"]
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"


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


def coverage_figure(df: pl.DataFrame, label: str) -> go.Figure:
    """Share of meters heard in the last 24 h per district or gateway (horizontal bars, %)."""
    fig = go.Figure()
    if df.is_empty():
        return _layout(_empty(fig), f"Meters heard in the last 24 h, by {label}")
    df = df.sort("share", descending=True)
    names = df[df.columns[0]].to_list()
    pct = [round(100 * s, 1) for s in df["share"].to_list()]
    colors = [GREEN if p >= 95 else ORANGE if p >= 80 else RED for p in pct]
    fig.add_bar(
        y=names, x=pct, orientation="h", marker_color=colors, name="heard in 24 h",
        text=[f"{p:.0f} % ({h}/{m})" for p, h, m in zip(pct, df["heard"], df["meters"], strict=True)],
        textposition="inside", insidetextanchor="start", textfont={"color": "#fff"},
        hovertemplate="%{y}: %{x:.1f} % heard<extra></extra>",
    )
    fig.add_bar(
        y=names, x=[round(100 - p, 1) for p in pct], orientation="h", marker_color="#e6e9ed", name="not heard",
        text=[f"{m - h} silent" if m - h else "" for h, m in zip(df["heard"], df["meters"], strict=True)],
        textposition="inside", insidetextanchor="end", textfont={"color": "#444"},
        hovertemplate="%{y}: %{x:.1f} % not heard<extra></extra>",
    )
    fig.update_layout(barmode="stack")
    fig.update_xaxes(title_text="meters heard in the last 24 h (%)", range=[0, 105])
    fig.update_yaxes(autorange="reversed", automargin=True)
    return _layout(fig, f"Reading coverage by {label}", height=max(260, 60 + 26 * df.height), showlegend=False)


def freshness_figure(df: pl.DataFrame) -> go.Figure:
    """Meters by age of their last reading."""
    colors = [GREEN, GREEN, ORANGE, RED, RED, GREY]
    fig = go.Figure(go.Bar(x=df["age"].to_list(), y=df["meters"].to_list(), marker_color=colors[: df.height],
                           text=df["meters"].to_list(), textposition="outside",
                           hovertemplate="last reading %{x} ago: %{y} meters<extra></extra>"))
    fig.update_xaxes(title_text="age of the last reading")
    fig.update_yaxes(title_text="meters")
    return _layout(fig, "Data freshness: age of each meter's last reading", height=320, showlegend=False)


def alerts_by_kind_figure(df: pl.DataFrame) -> go.Figure:
    """Open alerts per kind: estimated volume lost (m3) as bars, the count as text."""
    fig = go.Figure()
    if df.is_empty():
        return _layout(_empty(fig, "no open alerts"), "Open alerts by kind")
    fig.add_bar(x=df["kind"].to_list(), y=[v or 0 for v in df["volume_lost_m3"].to_list()], marker_color=RED,
                text=[f"{n} open" for n in df["alerts"].to_list()], textposition="outside",
                customdata=df["alerts"].to_list(), name="estimated volume lost",
                hovertemplate="%{x}: %{customdata} open, ~%{y:.1f} m³ lost<extra></extra>")
    fig.update_yaxes(title_text="estimated volume lost (m³)")
    return _layout(fig, "Open alerts by kind: estimated volume lost (m³)", height=340, showlegend=False)


def district_consumption_figure(df: pl.DataFrame) -> go.Figure:
    """Daily consumption (m3/day) per district."""
    fig = go.Figure()
    if df.is_empty():
        return _layout(_empty(fig), "District (DMA) daily consumption (m³/day)")
    for i, (name, part) in enumerate(df.partition_by("district", as_dict=True, maintain_order=True).items()):
        fig.add_scatter(x=part["day"].to_list(), y=part["consumption_m3"].to_list(), mode="lines+markers",
                        name=str(name[0]), line={"color": PALETTE[i % len(PALETTE)], "width": 2},
                        marker={"size": 4},
                        hovertemplate="%{x|%a %d %b %Y}: %{y:.1f} m³<extra>%{fullData.name}</extra>")
    fig.update_yaxes(title_text="consumption (m³/day)", rangemode="tozero")
    return _layout(fig, "District (DMA) daily consumption (m³/day)")


def night_flow_figure(df: pl.DataFrame) -> go.Figure:
    """Night flow 02:00-04:00 (L/h) per district: the leakage indicator of a DMA."""
    fig = go.Figure()
    part_df = df.filter(pl.col("night_flow_l_h").is_not_null()) if not df.is_empty() else df
    if part_df.is_empty():
        return _layout(_empty(fig, "no hourly data for night flow"), "District night flow 02:00-04:00 (L/h)")
    for i, (name, part) in enumerate(part_df.partition_by("district", as_dict=True, maintain_order=True).items()):
        fig.add_scatter(x=part["day"].to_list(), y=part["night_flow_l_h"].to_list(), mode="lines+markers",
                        name=str(name[0]), line={"color": PALETTE[i % len(PALETTE)], "width": 2},
                        marker={"size": 4}, hovertemplate="%{x|%a %d %b}: %{y:.0f} L/h<extra>%{fullData.name}</extra>")
    fig.update_yaxes(title_text="night flow (L/h)", rangemode="tozero")
    return _layout(fig, "District night flow 02:00-04:00 (L/h)")


def verification_figure(df: pl.DataFrame) -> go.Figure:
    """Meters whose verification expires, per week."""
    fig = go.Figure()
    if df.is_empty():
        return _layout(_empty(fig, "no verification expires within 90 days"), "Verification expiring within 90 days")
    fig.add_bar(x=df["week"].to_list(), y=df["meters"].to_list(), marker_color=ORANGE, name="meters",
                hovertemplate="week of %{x|%d %b %Y}: %{y} meters<extra></extra>")
    fig.update_yaxes(title_text="meters")
    fig.update_xaxes(title_text="week of expiry")
    return _layout(fig, "Verification expiring within 90 days (meters per week)", height=320, showlegend=False)


def dead_letters_figure(df: pl.DataFrame) -> go.Figure:
    """Unresolved dead letters per reason."""
    fig = go.Figure()
    if df.is_empty():
        return _layout(_empty(fig, "no unresolved dead letters"), "Dead letters by reason")
    fig.add_bar(y=df["error_code"].to_list(), x=df["frames"].to_list(), orientation="h", marker_color=GREY,
                text=df["frames"].to_list(), textposition="auto",
                hovertemplate="%{y}: %{x} frames<extra></extra>")
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(title_text="unresolved frames")
    return _layout(fig, "Dead letters by reason (unresolved)", height=max(240, 80 + 28 * df.height),
                   showlegend=False)


# --------------------------------------------------------------------------------------------- meter


def meter_figure(daily: pl.DataFrame, last_year: pl.DataFrame, alerts: pl.DataFrame, vee: pl.DataFrame,
                 meter_id: str) -> go.Figure:
    """Index (m3), daily consumption (m3) with the same period last year, and alarms / VEE flags on one
    time axis; missing days shaded grey."""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.05, row_heights=[0.34, 0.46, 0.2],
                        subplot_titles=("Index (m³)", "Daily consumption (m³/day)", "Alarms and VEE flags"))
    days = daily["day"].to_list()
    fig.add_scatter(x=days, y=daily["index_m3"].to_list(), mode="lines+markers", name="index", connectgaps=False,
                    line={"color": BLUE, "width": 2}, marker={"size": 3}, row=1, col=1,
                    hovertemplate="%{x|%d %b %Y}: %{y:.3f} m³<extra>index</extra>")
    colors = [ORANGE if g else BLUE for g in daily["after_gap"].to_list()]
    fig.add_bar(x=days, y=daily["consumption_m3"].to_list(), name="consumption", marker_color=colors, row=2, col=1,
                hovertemplate="%{x|%a %d %b %Y}: %{y:.3f} m³<extra>consumption</extra>")
    if not last_year.is_empty():
        shifted = [d + timedelta(days=364) for d in last_year["day"].to_list()]
        fig.add_scatter(x=shifted, y=last_year["consumption_m3"].to_list(), mode="lines", name="same period last year",
                        line={"color": "#555", "width": 1.5, "dash": "dot"}, row=2, col=1,
                        customdata=last_year["day"].to_list(),
                        hovertemplate="%{customdata|%d %b %Y}: %{y:.3f} m³<extra>last year</extra>")
    missing = daily.filter(pl.col("missing"))
    if not missing.is_empty():
        fig.add_scatter(x=missing["day"].to_list(), y=[0] * missing.height, mode="markers", name="no data",
                        marker={"symbol": "x", "color": "#6b7785", "size": 7}, row=2, col=1,
                        hovertemplate="%{x|%d %b %Y}: no data<extra></extra>")
    _shade_gaps(fig, _runs(days, daily["missing"].to_list()), timedelta(days=1))
    lanes: list[str] = []
    for row in alerts.iter_rows(named=True):
        lane = f"alarm: {row['kind']}"
        color = RED if row["severity"] == "critical" else ORANGE
        fig.add_scatter(x=[row["first_seen"], row["last_seen"]], y=[lane, lane], mode="lines+markers",
                        line={"color": color, "width": 8}, marker={"size": 8, "color": color}, showlegend=False,
                        name=lane, row=3, col=1,
                        hovertemplate=f"{row['kind']} ({row['state']})<br>%{{x|%d %b %Y %H:%M}}<extra></extra>")
        lanes.append(lane)
    for row in vee.iter_rows(named=True):
        if row["quality"] == "ACTUAL" and not row["flags"]:
            continue
        lane = f"VEE: {row['quality'].lower()}"
        fig.add_scatter(x=[row["period_start"], row["period_end"]], y=[lane, lane], mode="lines+markers",
                        line={"color": "#7b57a8", "width": 8}, marker={"size": 8}, showlegend=False, name=lane,
                        row=3, col=1,
                        hovertemplate=(f"{row['quality']} {row['method']}<br>{row['flags'] or ''}"
                                       "<br>%{x|%d %b %Y}<extra></extra>"))
        lanes.append(lane)
    if not lanes:
        fig.add_scatter(x=[days[0], days[-1]] if days else [], y=["none", "none"] if days else [], mode="lines",
                        line={"color": "rgba(0,0,0,0)"}, showlegend=False, hoverinfo="skip", row=3, col=1)
    fig.update_yaxes(title_text="m³", row=1, col=1)
    fig.update_yaxes(title_text="m³/day", rangemode="tozero", row=2, col=1)
    fig.update_yaxes(automargin=True, row=3, col=1)
    _layout(fig, f"Meter {meter_id}: index, daily consumption and events", height=660, bargap=0.15)
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.06, "xanchor": "left", "x": 0.0},
                      margin={"b": 70})
    return fig


def meter_hourly_figure(hourly: pl.DataFrame, meter_id: str) -> go.Figure:
    """Hourly consumption (L) with missing hours shaded."""
    fig = go.Figure()
    hours = hourly["hour"].to_list()
    fig.add_bar(x=hours, y=hourly["consumption_l"].to_list(), marker_color=BLUE, name="consumption",
                hovertemplate="%{x|%a %d %b %H:00}: %{y:.0f} L<extra></extra>")
    _shade_gaps(fig, _runs(hours, hourly["missing"].to_list()), timedelta(hours=1))
    fig.update_yaxes(title_text="L per hour", rangemode="tozero")
    if hourly["missing"].all():
        _empty(fig, "no hourly data in this period")
    return _layout(fig, f"Meter {meter_id}: hourly consumption (L), gaps shaded", height=320, showlegend=False,
                   bargap=0.05)
