"""`meterflow db upgrade`: apply the ordered migrations in storage/migrations once each.

Idempotent and safe to run from several processes at once (an advisory lock serialises them).
Numbering: 0001-0009 core, 0010-0019 ingest, 0020-0029 billing, 0030-0039 alerts, 0040-0049 web.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import psycopg

from meterflow.logs import ctx, get_logger
from storage import flavor as flavors

log = get_logger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path


def discover() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS_DIR.iterdir()):
        if path.suffix in (".sql", ".py") and path.stem[:4].isdigit():
            found.append(Migration(path.stem[:4], path.stem, path))
    versions = [m.version for m in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"two migrations share a number in {MIGRATIONS_DIR}: {versions}")
    return found


def _choose_flavor(conn: psycopg.Connection) -> flavors.Flavor:
    """First upgrade of a database: ask the server, record the flavour and why (`db status` shows both)."""
    choice = flavors.detect_choice(conn)
    (log.warning if choice.warning else log.info)("storage flavour chosen",
                                                  extra=ctx(flavor=choice.flavor, reason=choice.reason))
    conn.execute("INSERT INTO meterflow_meta (key, value) VALUES ('flavor', %s), ('flavor_reason', %s)",
                 (choice.flavor, ("WARNING: " if choice.warning else "") + choice.reason))
    conn.commit()
    return choice.flavor


def upgrade(conn: psycopg.Connection, timezone: str = "UTC") -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    conn.execute("SELECT pg_advisory_lock(hashtext('meterflow.migrate'))")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute("CREATE TABLE IF NOT EXISTS meterflow_meta (key text PRIMARY KEY, value text NOT NULL)")
        conn.commit()
        row = conn.execute("SELECT value FROM meterflow_meta WHERE key = 'flavor'").fetchone()
        flavor: flavors.Flavor = row[0] if row else _choose_flavor(conn)
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        applied = []
        for m in discover():
            if m.version in done:
                continue
            log.info("applying migration", extra=ctx(migration=m.name, flavor=flavor))
            with conn.transaction():
                if m.path.suffix == ".sql":
                    conn.execute(m.path.read_text())
                else:
                    module = importlib.import_module(f"storage.migrations.{m.path.stem}")
                    module.upgrade(conn, flavor, timezone)
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (m.version, m.name))
            applied.append(m.name)
        conn.commit()
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext('meterflow.migrate'))")
        conn.commit()
