"""Fixtures of the dashboard tests (data in dash_seed.py)."""

from dash_seed import seeded, web_settings

__all__ = ["seeded", "web_settings"]
