"""The running app and headless Chromium for the browser tests (Debian's Chromium; no browser downloads)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from dash_seed import web_settings_for

from api.app import create_app
from meterflow.config import Settings

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NEEDS_CHROMIUM = pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium not installed at "
                                    "/usr/bin/chromium (apt-get install -y chromium chromium-driver)")
CHART_STATS_JS = """() => Array.from(document.querySelectorAll('div.chart')).map(d => ({
    id: d.id,
    rendered: d.classList.contains('js-plotly-plot'),
    traces: (d.data || []).length,
    points: (d.data || []).reduce((n, t) => n + ((t.x || t.y || []).filter(v => v !== null).length), 0),
}))"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(settings: Settings, dsn: str) -> Iterator[str]:
    """The web app with these settings on a free local port (uvicorn in a thread); yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, dsn), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@contextmanager
def running_app(dsn: str) -> Iterator[str]:
    """The web app with the dashboard tests' settings (dash_seed) on a free local port."""
    with live_server(web_settings_for(dsn), dsn) as url:
        yield url


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()
