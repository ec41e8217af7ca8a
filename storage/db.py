"""Connections: the configured PostgreSQL, or an embedded one on a fresh machine."""

from __future__ import annotations

import psycopg

from meterflow.config import Settings
from meterflow.embedded import EmbeddedPostgres
from meterflow.logs import get_logger

log = get_logger(__name__)
_embedded: dict[str, EmbeddedPostgres] = {}
EMBEDDED_DB = "meterflow"


def resolve_dsn(settings: Settings) -> str:
    """The database URL in force: METERFLOW_DATABASE_URL, else an embedded server under data_dir."""
    dsn = settings.database_dsn()
    if dsn:
        return dsn
    key = str(settings.data_dir)
    if key not in _embedded:
        _embedded[key] = EmbeddedPostgres(settings.data_dir)
    server_uri = _embedded[key].start()
    ensure_database(server_uri, EMBEDDED_DB)
    return with_database(server_uri, EMBEDDED_DB)


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
