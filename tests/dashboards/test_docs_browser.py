"""The API docs in headless Chromium: Swagger UI renders from the app's own files under the strict CSP (no CDN,
no console errors, not a single request leaving the app)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import CHROMIUM, running_app
from dash_seed import Seeded

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium not installed at /usr/bin/chromium"),
]


@pytest.fixture(scope="module")
def base_url(seeded: Seeded) -> Iterator[str]:
    with running_app(seeded.dsn) as url:
        yield url


def test_docs_render_offline_under_the_csp(browser: Any, base_url: str) -> None:
    ctx = browser.new_context()
    page = ctx.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(base_url) else None)
    response = page.goto(f"{base_url}/docs", wait_until="networkidle")
    assert response is not None and response.status == 200
    assert "script-src 'self'" in (response.headers.get("content-security-policy") or "")
    page.wait_for_selector(".swagger-ui .info .title", timeout=15000)
    assert "meterflow" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".opblock").count() >= 3  # the operations are listed
    ctx.close()
    assert errors == [] and outside == []
