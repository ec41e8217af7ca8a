"""Connections to the configured PostgreSQL. Whether an embedded server stands in for a missing one is the
edge's decision (`cli/embedded.py`), never a side effect of asking for the DSN."""

from __future__ import annotations

import psycopg

from meterflow.config import Settings


def resolve_dsn(settings: Settings) -> str:
    """The database URL in force (METERFLOW_DATABASE_URL, or the one the edge put into the settings)."""
    dsn = settings.database_dsn()
    if not dsn:
        raise RuntimeError("no database configured: set METERFLOW_DATABASE_URL (the meterflow command starts an "
                           "embedded PostgreSQL under data_dir when it is unset)")
    return dsn


def with_database(uri: str, dbname: str) -> str:
    """Swap the database name in a postgresql:// URI (keeps ?host= and other parameters)."""
    conninfo = psycopg.conninfo.conninfo_to_dict(uri)
    conninfo["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**conninfo)  # type: ignore[arg-type]


def ensure_database(server_uri: str, dbname: str) -> None:
    with psycopg.connect(server_uri, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(f'CREATE DATABASE "{dbname}"')


def connect(dsn: str, **kwargs: object) -> psycopg.Connection:
    """Open a connection; errors tell the operator what to check."""
    try:
        return psycopg.connect(dsn, **kwargs)  # type: ignore[arg-type]
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"cannot reach PostgreSQL ({exc.__class__.__name__}: {str(exc).strip().splitlines()[0]}). "
            "Check METERFLOW_DATABASE_URL, or unset it to use the embedded server."
        ) from exc
