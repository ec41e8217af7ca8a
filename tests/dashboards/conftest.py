"""Fixtures of the dashboard tests (data in dash_seed.py and customer_seed.py; the app and Chromium in
browser_support.py)."""

from collections.abc import Iterator
from typing import Any

import pytest
from customer_seed import customers
from dash_seed import seeded, web_settings

__all__ = ["customers", "seeded", "web_settings"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for one test module."""
    from browser_support import chromium

    with chromium() as b:
        yield b
