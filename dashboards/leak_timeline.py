"""Leak alert timeline figures (plotly, written as HTML and PNG): hourly use of a few meters with the incidents
(and the truth, if known) — the figures of `meterflow eval leaks --plot`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

COLOURS = {"leak": "rgba(214,39,40,0.25)",
           "burst": "rgba(148,103,189,0.3)", "backflow": "rgba(140,86,75,0.3)", "stuck": "rgba(127,127,127,0.3)",
           "silent": "rgba(188,189,34,0.3)"}


def alert_timeline(hourly: pl.DataFrame, alerts: pl.DataFrame, meters: list[str], title: str,
                   truth: pl.DataFrame | None = None) -> Any:
    """One row per meter: hourly use (L/h), alert spans shaded by kind, true events as a bar above."""
    fig = make_subplots(rows=len(meters), cols=1, shared_xaxes=False, vertical_spacing=0.06,
                        subplot_titles=[f"meter {m}" for m in meters])
    seen: set[str] = set()
    for i, m in enumerate(meters, start=1):
        h = hourly.filter(pl.col("meter_id") == m).sort("hour")
        fig.add_trace(go.Scatter(x=h.get_column("hour").to_list(), y=h.get_column("use_l").to_list(),
                                 mode="lines", line={"width": 1, "color": "#1f77b4"}, name="use L/h",
                                 showlegend=i == 1), row=i, col=1)
        ymax = float(h.get_column("use_l").max() or 1.0)  # type: ignore[arg-type]
        for a in alerts.filter(pl.col("meter_id") == m).iter_rows(named=True):
            kind = str(a["kind"])
            fig.add_trace(go.Scatter(
                x=[a["start"], a["start"], a["end"], a["end"], a["start"]], y=[0, ymax, ymax, 0, 0],
                fill="toself", fillcolor=COLOURS.get(kind, "rgba(31,119,180,0.2)"), line={"width": 0},
                mode="lines", name=f"alert: {kind}", legendgroup=kind, showlegend=kind not in seen,
                hovertext=f"{kind} {a['rate_l_h'] or 0:.1f} L/h from {a['start']:%Y-%m-%d %H:%M}"), row=i, col=1)
            seen.add(kind)
        if truth is not None:
            for t in truth.filter(pl.col("meter_id") == m).iter_rows(named=True):
                label = f"truth: {t['kind']} {t['rate_l_h']:.0f} L/h"
                fig.add_trace(go.Scatter(x=[t["start"], t["end"]], y=[ymax * 1.05] * 2, mode="lines",
                                         line={"width": 6, "color": "black"}, name="true event",
                                         legendgroup="truth", showlegend="truth" not in seen, hovertext=label),
                              row=i, col=1)
                seen.add("truth")
        fig.update_yaxes(title_text="L/h", row=i, col=1)
    fig.update_layout(title=title, height=260 * len(meters) + 120, width=1100, template="plotly_white")
    return fig


def write_figure(fig: Any, out_dir: str | Path, name: str) -> list[Path]:
    """HTML always; PNG too when kaleido is installed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    html = out / f"{name}.html"
    fig.write_html(str(html), include_plotlyjs="cdn")
    written = [html]
    png = out / f"{name}.png"
    try:
        import kaleido  # noqa: F401

        fig.write_image(str(png))
        written.append(png)
    except Exception:  # no kaleido: try a headless Chromium through playwright, else HTML only
        if _png_with_chromium(fig, out / f".{name}.inline.html", png):
            written.append(png)
    return written


CHROMIUM = Path("/usr/bin/chromium")


def _png_with_chromium(fig: Any, tmp_html: Path, png: Path) -> bool:
    if not CHROMIUM.exists():
        return False
    try:
        from playwright.sync_api import sync_playwright

        fig.write_html(str(tmp_html), include_plotlyjs=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": int(fig.layout.width or 1100),
                                              "height": int(fig.layout.height or 800)})
            page.goto(tmp_html.resolve().as_uri())
            page.wait_for_selector(".main-svg", timeout=20000)
            page.screenshot(path=str(png), full_page=True)
            browser.close()
        return True
    except Exception:
        return False
    finally:
        tmp_html.unlink(missing_ok=True)
