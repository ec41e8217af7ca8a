"""A standalone HTML report of fleet consumption (plotly.js inlined, so it opens offline anywhere)."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots


def fleet_consumption_figure(total: pl.DataFrame, per_meter: pl.DataFrame, sample_meters: list[str]) -> go.Figure:
    """Top: the fleet's daily use (bars) and meters reporting (line). Bottom: a few meters' daily use."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("Fleet daily consumption", "Daily consumption of sample meters"),
                        specs=[[{"secondary_y": True}], [{}]])
    fig.add_trace(go.Bar(x=total["bucket"].to_list(), y=total["consumption_m3"].to_list(),
                         name="fleet m³/day", marker_color="#1f77b4"), row=1, col=1)
    fig.add_trace(go.Scatter(x=total["bucket"].to_list(), y=total["meters"].to_list(), name="meters reporting",
                             mode="lines", line={"color": "#ff7f0e"}), row=1, col=1, secondary_y=True)
    for meter in sample_meters:
        one = per_meter.filter(pl.col("meter_id") == meter)
        fig.add_trace(go.Scatter(x=one["bucket"].to_list(), y=(one["consumption_m3"] * 1000).to_list(),
                                 name=f"meter {meter} (L/day)", mode="lines+markers"), row=2, col=1)
    fig.update_yaxes(title_text="m³/day", row=1, col=1)
    fig.update_yaxes(title_text="meters", row=1, col=1, secondary_y=True, rangemode="tozero")
    fig.update_yaxes(title_text="litres/day", row=2, col=1)
    fig.update_layout(height=800, title="meterflow: consumption from radio telegrams", template="plotly_white",
                      legend={"orientation": "h", "y": -0.08})
    return fig


def write_fleet_report(path: Path, daily: pl.DataFrame, total: pl.DataFrame, summary: dict[str, object],
                       sample_meters: int = 5) -> Path:
    """The fleet's daily use and a few meters' (the first `sample_meters` by id) as one HTML page."""
    samples = sorted(daily["meter_id"].unique().to_list())[:sample_meters]
    return write_report(fleet_consumption_figure(total, daily, samples), path, summary)


def write_report(fig: go.Figure, path: Path, summary: dict[str, object]) -> Path:
    """Write the figure and a summary table into one self-contained HTML file."""
    rows = "".join(f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in summary.items())
    body = fig.to_html(full_html=False, include_plotlyjs=True)
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>meterflow demo</title></head>"
        "<body style='font-family:sans-serif;max-width:1200px;margin:auto'>"
        f"<h1>meterflow demo</h1><table>{rows}</table>{body}</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
