"""`N_`: marks a text for the pages' translation catalogue (api/locales) where it is defined, so code below the
web layer (storage's list specs, the workflow's refusals) stays English and the page translates it when shown."""

from __future__ import annotations


def N_(message: str) -> str:
    """The message unchanged; `pybabel extract -k N_` collects it."""
    return message
