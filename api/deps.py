"""Shared request dependencies: settings, database connections, scoped bearer-token auth."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from api.pages.auth import require_scope
from meterflow.config import Settings

# declares the bearer scheme in the OpenAPI schema; the checking is require_scope's
bearer = HTTPBearer(auto_error=False, description="A named token (`meterflow tokens add NAME --scope ...`)")

require_billing_read = require_scope("billing:read")
require_readings_write = require_scope("readings:write")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_db(request: Request) -> Iterator[psycopg.Connection]:
    """A pooled connection per request (rolled back unless the handler commits)."""
    with request.app.state.pool.connection() as conn:
        yield conn


BILLING_READ = [Depends(bearer), Depends(require_billing_read)]
READINGS_WRITE = [Depends(bearer), Depends(require_readings_write)]

# the former "any token" dependency: kept for callers written before scopes
require_token = require_scope("analyst")
