"""The web application served by `meterflow serve`: billing API, manual reads and dashboards."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from psycopg_pool import ConnectionPool

from api.routes import ROUTERS
from meterflow import __version__
from meterflow.config import Settings
from meterflow.logs import get_logger

log = get_logger(__name__)


def create_app(settings: Settings, dsn: str) -> FastAPI:
    """Build the app for one database, with every router of api.routes.ROUTERS."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool.open(wait=True, timeout=30)
        yield
        app.state.pool.close()

    app = FastAPI(
        title="meterflow",
        version=__version__,
        description="Billing consumption, manual reads and dashboards of a water utility.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.pool = ConnectionPool(dsn, min_size=1, max_size=8, open=False)
    # pages carry their chart data (a customer page is ~100 kB of HTML): gzip them for phones; static files
    # arrive gzipped already (api/routes/static.py) and pass through untouched
    app.add_middleware(GZipMiddleware, minimum_size=2048, compresslevel=6)
    for spec in ROUTERS:
        module_name, attr = spec.split(":")
        app.include_router(getattr(importlib.import_module(module_name), attr))
    return app
