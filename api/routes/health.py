"""Liveness and readiness for load balancers and monitoring."""

from __future__ import annotations

import psycopg
from fastapi import APIRouter, Depends

from api.deps import get_db

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(conn: psycopg.Connection = Depends(get_db)) -> dict[str, str]:
    conn.execute("SELECT 1")
    return {"status": "ok"}
