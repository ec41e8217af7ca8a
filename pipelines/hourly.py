"""What every hourly flow starts from: its settings and the hour it runs for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from meterflow.config import Settings, load_settings


def hourly_run(as_of: datetime | None, settings: Any) -> tuple[Settings, datetime]:
    """The settings passed in (else loaded from the environment and files) and the whole UTC hour of `as_of`
    (else now)."""
    s = settings if isinstance(settings, Settings) else load_settings()
    return s, (as_of or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
