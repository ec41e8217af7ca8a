"""Every dashboard page in headless Chromium against the running app: loads without console errors, every
chart renders with data points, and a screenshot lands in artifacts/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import CHART_STATS_JS, CHROMIUM, SCREENSHOTS, running_app
from dash_seed import NOW_PARAM, TOKEN, Seeded, web_settings_for

from api.pages.auth import customer_signature

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium not installed at /usr/bin/chromium "
                       "(apt-get install -y chromium chromium-driver)"),
]

@pytest.fixture(scope="module")
def base_url(seeded: Seeded) -> Iterator[str]:
    with running_app(seeded.dsn) as url:
        yield url


def _visit(browser: Any, url: str, name: str, context: Any | None = None) -> list[dict[str, Any]]:
    ctx = context or browser.new_context(viewport={"width": 1360, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    response = page.goto(url, wait_until="networkidle")
    assert response is not None and response.status == 200, f"{name}: HTTP {response and response.status}"
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('div.chart')).every(d => d.classList.contains('js-plotly-plot'))",
        timeout=15000,
    )
    stats: list[dict[str, Any]] = page.evaluate(CHART_STATS_JS)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    page.close()
    assert not errors, f"{name}: {errors}"
    assert stats, f"{name}: no charts on the page"
    empty = [s["id"] for s in stats if not (s["rendered"] and s["traces"] and s["points"])]
    assert not empty, f"{name}: charts without data points: {empty} ({stats})"
    return stats


def test_analyst_pages_in_chromium(browser: Any, base_url: str) -> None:
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    # ?token= stores the token in a cookie and redirects to the clean URL
    stats = _visit(browser, f"{base_url}/dashboards/fleet?token={TOKEN}&now={NOW_PARAM}", "fleet", ctx)
    assert {s["id"] for s in stats} >= {"chart-coverage-district", "chart-coverage-gateway", "chart-freshness",
                                         "chart-alerts-kind", "chart-district-consumption", "chart-night-flow",
                                         "chart-verification", "chart-dead-letters"}
    assert any(c["name"] == "meterflow_token" for c in ctx.cookies())
    _visit(browser, f"{base_url}/dashboards/meters/M1?now={NOW_PARAM}", "meter-M1", ctx)
    _visit(browser, f"{base_url}/dashboards/meters/M2?now={NOW_PARAM}&days=60", "meter-M2", ctx)
    ctx.close()


def test_login_form_in_chromium(browser: Any, base_url: str) -> None:
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(f"{base_url}/dashboards/fleet?now={NOW_PARAM}")
    assert "/login" in page.url
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/dashboards/fleet" in page.url and page.title().startswith("Fleet overview")
    ctx.close()


def test_customer_pages_in_chromium(browser: Any, base_url: str) -> None:
    sig = customer_signature(web_settings_for("postgresql://unused"), "C-A")
    _visit(browser, f"{base_url}/c/C-A?sig={sig}&now={NOW_PARAM}", "customer-C-A")
    _visit(browser, f"{base_url}/c/C-A/meters/M1?sig={sig}&now={NOW_PARAM}", "customer-C-A-M1")
