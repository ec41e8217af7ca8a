"""The interruption maps in headless Chromium (Debian's, no network): drawn with no tile server, the street
without water in red, no console errors. Screenshots land in artifacts/screenshots/."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import polars as pl
import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboards"))
from browser_support import NEEDS_CHROMIUM, SCREENSHOTS, chromium, live_server  # the dashboards' browser kit
from test_done_when import _load

from fixtures.interruptions import AreaConfig, build_area, default_events
from meterflow.config import Settings
from pipelines.interruptions import run_interruptions

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]
TOKEN = "map-token"


def test_maps_draw_the_street_without_water(clean_db: psycopg.Connection, database_url: str) -> None:
    cfg = AreaConfig(days=14, seed=5, districts=3)
    cut = default_events(cfg)[0]
    area = build_area(AreaConfig(days=14, seed=5, districts=3, events=(cut,)))
    now = cut.start + timedelta(hours=3)
    _load(clean_db, area.registry, area.readings_until(now))
    settings = Settings.model_validate({"database_url": database_url, "timezone": "Europe/Warsaw",
                                        "api": {"tokens": [TOKEN]}})
    assert run_interruptions(clean_db, settings, now)["opened"] == 1
    lipowa = area.registry.filter(pl.col("street") == "Lipowa").height
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with live_server(settings, database_url) as url, chromium() as browser:
        for path, name in ((f"/dashboards/interruptions?lang=en&token={TOKEN}", "dispatcher"),
                           ("/outages?lang=en", "public")):
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.on("requestfailed", lambda r, errors=errors: errors.append(f"request failed {r.url}"))
            page.goto(url + path)
            page.wait_for_selector("#chart-map.js-plotly-plot .scatterlayer")
            traces = page.evaluate("() => document.getElementById('chart-map').data.map("
                                   "t => [t.name, t.type, (t.x || []).length])")
            assert ["no water", "scatter", lipowa] in traces
            assert sum(n for name_, _, n in traces if name_ != "streets") == area.registry.height
            assert page.locator("#chart-map .maplayer, #chart-map .mapboxgl-canvas").count() == 0
            assert "Lipowa" in page.inner_text("#interruptions-now")
            page.screenshot(path=str(SCREENSHOTS / f"interruptions-map-{name}.png"), full_page=True)
            assert errors == []
            page.close()
