"""Flavour detection asks the server first and never sends the CREATE EXTENSION that would be FATAL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from click.testing import CliRunner

from cli.main import cli
from storage import flavor
from storage.db import with_database
from storage.migrate import discover

NOPRELOAD_ENV = "METERFLOW_TIMESCALE_NOPRELOAD_URL"  # a server with the package installed but not preloaded

CHOICES = [
    # (available, installed, shared_preload_libraries) -> flavour, warning, words of the reason
    ((None, None, ""), ("postgres", False, "not installed on this server")),
    ((None, None, "pg_stat_statements"), ("postgres", False, "not installed on this server")),
    (("2.28.3", None, ""), ("postgres", True, "not in shared_preload_libraries (empty)")),
    (("2.28.3", None, "pg_stat_statements"), ("postgres", True, "not in shared_preload_libraries")),
    (("2.28.3", None, "timescaledb"), ("timescale", False, "installed and preloaded")),
    (("2.28.3", None, "pg_stat_statements, '$libdir/timescaledb-2.28.3'"), ("timescale", False, "preloaded")),
    (("2.28.3", "2.28.3", ""), ("timescale", False, "already installed in this database")),
]


@pytest.mark.parametrize(("facts", "expected"), CHOICES)
def test_choice_from_what_the_server_says(facts: tuple[str | None, str | None, str],
                                          expected: tuple[str, bool, str]) -> None:
    choice = flavor.choose(*facts)
    assert (choice.flavor, choice.warning) == expected[:2]
    assert expected[2] in choice.reason


@pytest.fixture
def scratch_db(pg_server_uri: str) -> Iterator[str]:
    name = f"meterflow_flavour_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_uri, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield with_database(pg_server_uri, name)
    with psycopg.connect(pg_server_uri, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run(dsn: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={"METERFLOW_DATABASE_URL": dsn})
    return result.exit_code, result.stdout, result.stderr


def test_installed_but_not_preloaded_gets_plain_with_a_warning_and_completes(scratch_db: str) -> None:
    # What the detector reads, as a server with the package installed but not preloaded answers it: on such
    # a server CREATE EXTENSION timescaledb is FATAL and closes the connection mid-migration.
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute("CREATE VIEW public.pg_available_extensions AS SELECT 'timescaledb'::name AS name,"
                     " '2.28.3'::text AS default_version, NULL::text AS installed_version")
        conn.execute("CREATE VIEW public.pg_settings AS SELECT 'shared_preload_libraries'::text AS name,"
                     " 'pg_stat_statements'::text AS setting")
        conn.execute(f'ALTER DATABASE "{conn.info.dbname}" SET search_path = public, pg_catalog')
    code, out, err = _run(scratch_db, "db", "upgrade")
    assert code == 0, out + err
    assert "flavour: postgres (WARNING: the TimescaleDB 2.28.3 package is installed but not in" \
           " shared_preload_libraries (pg_stat_statements)" in err
    assert f"schema up to date (postgres); applied {len(discover())} migration(s)" in out
    with psycopg.connect(scratch_db) as conn:
        assert conn.execute("SELECT count(*) FROM pg_catalog.pg_extension WHERE extname = 'timescaledb'"
                            ).fetchone() == (0,)  # never tried, so never fatal
        assert conn.execute("SELECT relkind FROM pg_class WHERE relname = 'readings'").fetchone() == ("p",)
    code, out, err = _run(scratch_db, "db", "status")
    assert code == 0, out + err
    assert "flavour: postgres (WARNING: the TimescaleDB 2.28.3 package" in out


@pytest.mark.timescale
def test_real_server_without_preload() -> None:
    """The same against a real one (a private cluster of the TimescaleDB build without shared_preload_libraries)."""
    server = os.environ.get(NOPRELOAD_ENV)
    if not server:
        pytest.skip(f"{NOPRELOAD_ENV} is not set (TimescaleDB is not installable here)")
    name = f"meterflow_flavour_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        code, out, err = _run(with_database(server, name), "db", "upgrade")
        assert code == 0, out + err
        assert "installed but not in shared_preload_libraries" in err
        assert "schema up to date (postgres)" in out
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
