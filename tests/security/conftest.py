"""Fixtures of the security tests (data in sec_seed.py)."""

from sec_seed import client, sec_settings, seeded_db

__all__ = ["client", "sec_settings", "seeded_db"]
