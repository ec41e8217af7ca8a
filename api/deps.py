"""Shared request dependencies: settings, database connections, bearer-token auth."""

from __future__ import annotations

import hmac
from collections.abc import Iterator

import psycopg
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from meterflow.config import Settings

_bearer = HTTPBearer(auto_error=False, description="A token from settings api.tokens (METERFLOW_API__TOKENS)")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_db(request: Request) -> Iterator[psycopg.Connection]:
    """A pooled connection per request (rolled back unless the handler commits)."""
    with request.app.state.pool.connection() as conn:
        yield conn


def require_token(
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    settings: Settings = Depends(get_settings),
) -> str:
    """Analyst pages and the billing API: `Authorization: Bearer <token>`."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    given = credentials.credentials.encode()
    for token in settings.api.tokens:
        if hmac.compare_digest(given, token.get_secret_value().encode()):
            return "analyst"
    raise HTTPException(status.HTTP_403_FORBIDDEN, "token not accepted")
