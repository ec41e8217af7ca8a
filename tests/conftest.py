"""Test services: the real PostgreSQL and Mosquitto when reachable, embedded ones otherwise.

One database per test session, created, migrated, and dropped at the end.
Override with METERFLOW_TEST_PG_URL (a server/admin URL) and METERFLOW_TEST_MQTT_URL.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from meterflow.config import Settings
from storage.db import with_database
from storage.migrate import upgrade

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_MQTT = "mqtt://127.0.0.1:1883"
TEST_TIMEZONE = "Europe/Warsaw"
TIMESCALE_ENV = "METERFLOW_TIMESCALE_URL"  # a server preloading TimescaleDB: the timescale variants run on it
FLAVOUR_AREAS = ("storage", "billing", "leaks", "dashboards")
DATA_TABLES = ("readings", "readings_packed", "raw_frames", "dead_letters", "alerts", "billing_audit",
               "billing_results", "billing_runs", "meters", "consumption_hourly", "consumption_daily", "district_daily",
               "meter_last_heard", "heard_hourly", "reading_conflicts", "tariff_changes", "alert_events",
               "api_tokens", "api_sessions", "meter_customers",
               "interruption_notices", "notice_subscriptions", "interruptions", "planned_works")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """With METERFLOW_TIMESCALE_URL set, the database tests of FLAVOUR_AREAS run on both flavours."""
    if not os.environ.get(TIMESCALE_ENV) or "pg_server_uri" not in metafunc.fixturenames:
        return
    if metafunc.definition.path.parent.name not in FLAVOUR_AREAS:
        return
    metafunc.parametrize("pg_server_uri", ["postgres", pytest.param("timescale", marks=pytest.mark.timescale)],
                         indirect=True, scope="session")


@pytest.fixture(scope="session")
def pg_server_uri(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Admin URL of a PostgreSQL server: the real one, else an embedded one for this session; the TimescaleDB
    server of METERFLOW_TIMESCALE_URL for the timescale variants."""
    if getattr(request, "param", "postgres") == "timescale":
        yield os.environ[TIMESCALE_ENV]
        return
    url = os.environ.get("METERFLOW_TEST_PG_URL", DEFAULT_PG)
    if _reachable(url, 5432):
        yield url
        return
    from cli.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path_factory.mktemp("embedded-pg"))
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def database_url(pg_server_uri: str) -> Iterator[str]:
    """A fresh, migrated database for this test session (dropped afterwards)."""
    name = f"meterflow_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(pg_server_uri, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = with_database(pg_server_uri, name)
    with psycopg.connect(dsn) as conn:
        upgrade(conn, TEST_TIMEZONE)
        if conn.execute("SELECT value FROM meterflow_meta WHERE key = 'flavor'").fetchone() == ("timescale",):
            # the tests compress and refresh through `db maintain`; a background compression job would queue
            # for a chunk a test holds open in one connection while it waits on another, and hang the session
            conn.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs"
                         " WHERE job_id >= 1000")
            conn.commit()
    yield dsn
    with psycopg.connect(pg_server_uri, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection to the session database; rolled back if the test leaves a transaction open."""
    with psycopg.connect(database_url) as conn:
        yield conn
        conn.rollback()


@pytest.fixture
def clean_db(db: psycopg.Connection) -> psycopg.Connection:
    """The session database with every data table emptied first."""
    db.execute("TRUNCATE " + ", ".join(DATA_TABLES) + " RESTART IDENTITY CASCADE")
    db.commit()
    return db


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    """The real broker when reachable, else an in-process amqtt broker."""
    url = os.environ.get("METERFLOW_TEST_MQTT_URL", DEFAULT_MQTT)
    if _reachable(url, 1883):
        yield url
        return
    from cli.embedded import EmbeddedBroker

    broker = EmbeddedBroker()
    yield broker.start()
    broker.stop()


@pytest.fixture
def settings(database_url: str, mqtt_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, mqtt={"url": mqtt_url}, data_dir=tmp_path / ".meterflow",
                    timezone=TEST_TIMEZONE)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED} (it sits beside the repository)")
    return SHARED


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect backend for the whole session (starting one costs seconds)."""
    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="prefect-home-"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
