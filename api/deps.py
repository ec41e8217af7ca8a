"""Shared request dependencies: settings, database connections, bearer-token auth."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.pages.auth import COOKIE, token_accepted
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
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    settings: Settings = Depends(get_settings),
) -> str:
    """Analyst pages and the billing API: `Authorization: Bearer <token>`, or the login cookie of a browser."""
    if credentials is not None and credentials.scheme.lower() == "bearer":
        given: str | None = credentials.credentials
    else:
        given = request.cookies.get(COOKIE)
    if not given:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    if token_accepted(settings, given):
        return "analyst"
    raise HTTPException(status.HTTP_403_FORBIDDEN, "token not accepted")
