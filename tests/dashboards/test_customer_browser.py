"""The customer page in headless Chromium for four households (ordinary month, meter exchanged mid-month, first
month of data, a burst): no console errors, no axe-core violations at normal and high contrast, every chart
drawn with data, February's figure equal to `meterflow billing export`, the read types, and a self-read round
trip. Screenshots in Polish and English at desktop and phone widths land in artifacts/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg
import pytest
from axe_playwright_python.sync_playwright import Axe
from browser_support import CHART_STATS_JS, NEEDS_CHROMIUM, SCREENSHOTS, live_server
from customer_seed import Customers, exported, link

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]

DESKTOP = {"width": 1360, "height": 900}
PHONE = {"width": 390, "height": 844}
CHARTS = {"chart-daily", "chart-monthly", "chart-hourly"}


@pytest.fixture(scope="module")
def base_url(customers: Customers) -> Iterator[str]:
    with live_server(customers.settings, customers.dsn) as url:
        yield url


class Visit:
    """One page in a fresh context, with its console errors collected."""

    def __init__(self, browser: Any, url: str, viewport: dict[str, int] = DESKTOP, **context: Any) -> None:
        self.ctx = browser.new_context(viewport=viewport, **context)
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}")
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}"))
        self.response = self.page.goto(url, wait_until="networkidle")
        self.wait_for_charts()

    def wait_for_charts(self) -> None:
        self.page.wait_for_function("() => Array.from(document.querySelectorAll('div.chart'))"
                                    ".every(d => d.classList.contains('js-plotly-plot'))", timeout=20000)

    def accessibility_violations(self) -> tuple[int, str]:
        result = Axe().run(self.page)
        return result.violations_count, result.generate_report()

    def close(self) -> None:
        self.ctx.close()


@pytest.mark.parametrize(("customer", "meters"), [("K-ORD", ["K1"]), ("K-EXC", ["E1", "E2"]), ("K-NEW", ["N1"]),
                                                  ("K-BRS", ["B1"])])
def test_customer_page_in_chromium(browser: Any, base_url: str, customers: Customers, customer: str,
                                   meters: list[str]) -> None:
    billed = round(sum(exported(customers.settings, date(2026, 2, 1), date(2026, 3, 1))[m] for m in meters), 3)
    for contrast, context in (("", {}), ("high", {"contrast": "more"})):
        query = {"contrast": contrast} if contrast else {}
        visit = Visit(browser, base_url + link(customers.settings, customer, **query), **context)
        assert visit.response is not None and visit.response.status == 200
        stats = {s["id"]: s for s in visit.page.evaluate(CHART_STATS_JS)}
        assert set(stats) == CHARTS
        assert all(s["rendered"] and s["traces"] and s["points"] for s in stats.values()), stats
        shown = float(visit.page.get_attribute('tr[data-month="2026-02"]', "data-m3") or "nan")
        assert shown == pytest.approx(billed, abs=5e-4), f"{customer}: page {shown}, billing export {billed}"
        bar = visit.page.evaluate("() => { const t = document.getElementById('chart-monthly').data[0];"
                                  " return t.y[t.customdata.indexOf('2026-02')]; }")
        assert bar == pytest.approx(billed, abs=5e-4)
        if customer == "K-EXC":  # the exchange is marked on the daily and the monthly chart
            marks = visit.page.evaluate("() => ['chart-daily', 'chart-monthly'].map(id => (document.getElementById(id)"
                                        ".layout.annotations || []).map(a => a.text))")
            assert all("wymiana wodomierza" in texts for texts in marks), marks
        count, report = visit.accessibility_violations()
        assert count == 0, f"{customer} contrast={contrast or 'normal'}: {report}"
        assert not visit.errors, visit.errors
        if not contrast:
            visit.page.screenshot(path=str(SCREENSHOTS / f"customer-{customer}.png"), full_page=True)
        visit.close()


def test_read_types_and_self_read_round_trip(browser: Any, base_url: str, customers: Customers) -> None:
    with psycopg.connect(customers.dsn) as conn:
        row = conn.execute("SELECT total_m3 FROM readings WHERE meter_id = 'K1G' ORDER BY time DESC LIMIT 1").fetchone()
    assert row is not None
    url = base_url + link(customers.settings, "K-ORD", "/meters/K1G", now="2026-03-01T12:30")
    visit = Visit(browser, url)
    page = visit.page
    types = page.eval_on_selector_all("#readings-table tbody tr", "rows => rows.map(r => r.dataset.type)")
    assert {"remote", "self_read", "imported", "estimated"} <= set(types)
    assert page.locator('#readings-table tr[data-type="self_read"] .pill').first.inner_text() == "samoodczyt"
    # an index below the last one: refused with a Polish message, nothing stored
    page.fill("#index-K1G", "1,5")
    page.click("#self-read-K1G button[type=submit]")
    page.wait_for_load_state("networkidle")
    visit.wait_for_charts()
    assert "jest mniejszy od ostatniego odczytu" in page.inner_text("#err-K1G")
    assert page.get_attribute("#index-K1G", "aria-invalid") == "true"
    assert [e for e in visit.errors if "status of 422" not in e] == []  # the refusal's own status only
    visit.errors.clear()
    count, report = visit.accessibility_violations()
    assert count == 0, report
    # a good one with a decimal comma: stored, shown first in the table as a self-read
    value = round(row[0] + 0.237, 3)
    page.fill("#index-K1G", f"{value:.3f}".replace(".", ","))
    page.fill("#time-K1G", "2026-03-01T12:15")
    page.click("#self-read-K1G button[type=submit]")
    page.wait_for_load_state("networkidle")
    visit.wait_for_charts()
    assert page.locator("#saved").is_visible()
    first = page.locator("#readings-table tbody tr").first
    assert first.get_attribute("data-type") == "self_read"
    assert "01.03.2026 12:15" in first.inner_text() and f"{value:.3f}".replace(".", ",") in first.inner_text()
    assert not visit.errors, visit.errors
    visit.close()
    with psycopg.connect(customers.dsn) as conn:
        stored = conn.execute("SELECT total_m3, source FROM readings WHERE meter_id = 'K1G'"
                              " AND time = '2026-03-01 12:15+01'").fetchone()
    assert stored == (value, "manual")


def test_error_page_in_chromium(browser: Any, base_url: str) -> None:
    visit = Visit(browser, f"{base_url}/c/K-ORD?sig=forged&lang=en")
    assert visit.response is not None and visit.response.status == 403
    assert visit.page.inner_text("h1") == "This link is not valid"
    assert visit.page.get_attribute("html", "lang") == "en"
    count, report = visit.accessibility_violations()
    assert count == 0, report
    assert [e for e in visit.errors if "status of 403" not in e] == []  # the page's own status only
    visit.close()


@pytest.mark.parametrize("lang", ["pl", "en"])
def test_screenshots_at_desktop_and_phone_widths(browser: Any, base_url: str, customers: Customers, lang: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        visit = Visit(browser, base_url + link(customers.settings, "K-EXC", lang=lang), viewport,
                      locale="pl-PL" if lang == "pl" else "en-GB")
        assert visit.page.get_attribute("html", "lang") == lang
        overflow = visit.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{lang} {width}: the page is {overflow}px wider than the screen"
        count, report = visit.accessibility_violations()
        assert count == 0, report
        visit.page.screenshot(path=str(SCREENSHOTS / f"customer-{lang}-{width}.png"), full_page=True)
        assert not visit.errors, visit.errors
        visit.close()
