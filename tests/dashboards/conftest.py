"""Fixtures of the dashboard tests (data in dash_seed.py and customer_seed.py)."""

from customer_seed import customers
from dash_seed import seeded, web_settings

__all__ = ["customers", "seeded", "web_settings"]
