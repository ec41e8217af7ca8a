"""A dispatcher's morning in headless Chromium against the running app: sign in, filter the no-read list by a
district, open a meter from the search box, acknowledge, assign and close a leak incident with a reason,
export the list as CSV, and find every action in the audit under the signed-in name. Screenshots of the
console land in artifacts/screenshots/."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from browser_support import CHROMIUM, SCREENSHOTS, running_app
from console_seed import console_seeded
from dash_seed import NOW_PARAM, Seeded

from storage.tokens import add_token

__all__ = ["console_seeded"]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium not installed at /usr/bin/chromium"),
]
USER = "anna.nowak"  # a named dispatcher's token (meterflow tokens add), not the shared bootstrap one


@pytest.fixture(scope="module")
def base_url(console_seeded: Seeded) -> Iterator[str]:
    with running_app(console_seeded.dsn) as url:
        yield url


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _cells(page: Any, table: str) -> list[list[str]]:
    rows: list[list[str]] = page.eval_on_selector_all(
        f"#{table} tbody tr", "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent.trim()))")
    return rows


@pytest.fixture(scope="module")
def dispatcher_token(console_seeded: Seeded) -> str:
    """The dispatcher signs in with her own named, hashed token."""
    with psycopg.connect(console_seeded.dsn) as conn:
        token = add_token(conn, USER, ["analyst"])
        conn.commit()
    return token


def test_a_dispatchers_morning(browser: Any, base_url: str, console_seeded: Seeded, dispatcher_token: str) -> None:
    ctx = browser.new_context(viewport={"width": 1360, "height": 900}, accept_downloads=True)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))

    # sign in: the no-read list asks for it first
    page.goto(f"{base_url}/dashboards/lists/no-reads?now={NOW_PARAM}")
    assert "/login" in page.url
    page.fill("#token", dispatcher_token)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/dashboards/lists/no-reads" in page.url and USER in page.inner_text("header")

    # the no-read list, filtered to one district and one day
    page.select_option("#f-district", "South")
    page.fill("#f-days", "1")
    page.click("#list-filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "district=South" in page.url
    assert [r[0] for r in _cells(page, "worklist")] == ["M3", "M4"]  # M6 is removed, M5 is in East
    assert "data as of 2026-03-01 12:00" in page.inner_text("#data-as-of")
    _shot(page, "console-no-reads")

    # export it: the CSV holds the filtered rows
    with page.expect_download() as info:
        page.click("#export-csv")
    text = open(info.value.path(), encoding="utf-8").read()  # noqa: SIM115
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [r["meter_id"] for r in exported] == ["M3", "M4"] and {r["district"] for r in exported} == {"South"}

    # open a meter from the search box (an address finds one meter: straight to its page)
    page.fill("#search", "Lipowa 3")
    page.press("#search", "Enter")
    page.wait_for_load_state("networkidle")
    assert "/dashboards/meters/M2" in page.url and page.title().startswith("Meter M2")

    # its leak incident: acknowledge, assign, close with a reason
    page.click("#meter-alerts a[href^='/dashboards/alerts/']")
    page.wait_for_load_state("networkidle")
    assert "Continuous flow (leak)" in page.inner_text("h1")
    page.click("#form-acknowledge button")
    page.wait_for_load_state("networkidle")
    assert USER in page.inner_text("#ack")
    page.fill("#assignee-name", "crew-7")
    page.click("#form-assign button")
    page.wait_for_load_state("networkidle")
    assert "crew-7" in page.inner_text("#assignee")
    page.select_option("#close-reason", "repaired")
    page.fill("#form-close input[name=note]", "valve replaced")
    page.click("#form-close button")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("#alert-state") == "closed" and f"repaired by {USER}" in page.inner_text("#closed")
    _shot(page, "console-alert")
    alert_id = int(page.url.split("/dashboards/alerts/")[1].split("?")[0])

    # the audit: who did what
    page.click("nav a[href^='/dashboards/audit']")
    page.wait_for_load_state("networkidle")
    rows = [r for r in _cells(page, "audit") if r[3] == f"#{alert_id}"]
    assert [(r[1], r[2]) for r in reversed(rows)] == [(USER, "acknowledged"), (USER, "assigned to crew-7"),
                                                      (USER, "closed: repaired")]
    _shot(page, "console-audit")

    # the meter page shows the same history; the incidents list no longer has it
    page.goto(f"{base_url}/dashboards/meters/M2?now={NOW_PARAM}")
    assert "crew-7" in page.inner_text("#meter-events")
    page.goto(f"{base_url}/dashboards/lists/incidents?now={NOW_PARAM}")
    assert all(r[0] != f"#{alert_id}" for r in _cells(page, "worklist"))
    page.goto(f"{base_url}/dashboards/balance?now={NOW_PARAM}&days=10")
    page.wait_for_function("() => Array.from(document.querySelectorAll('div.chart'))"
                           ".every(d => d.classList.contains('js-plotly-plot'))", timeout=15000)
    assert [r[0] for r in _cells(page, "balance-ranking")] == ["West", "North"]
    _shot(page, "console-balance")
    ctx.close()
    assert not errors, errors
    with psycopg.connect(console_seeded.dsn) as conn:
        stored = conn.execute("SELECT actor, action FROM alert_events WHERE alert_id = %s ORDER BY id",
                              (alert_id,)).fetchall()
    assert stored == [(USER, "acknowledge"), (USER, "assign"), (USER, "close")]
