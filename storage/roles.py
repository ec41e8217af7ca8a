"""The database role of the web app: everything the pages and the API need, and not the AES key column.

`meterflow serve` should connect as this role, so a flaw in the web app (or a leaked web credential) cannot
read meters.aes_key. Column privileges do it: the role may select every column of `meters` but that one.
Re-run after `meterflow db upgrade` so new tables are granted too.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

SECRET_COLUMNS = {"meters": ("aes_key",)}
ROLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def create_web_role(conn: psycopg.Connection, role: str, password: str | None) -> list[str]:
    """Create (or update) a login role for the web app; returns the columns it may not read. Commits."""
    if not ROLE_RE.match(role):
        raise ValueError("a role name is lower-case letters, digits and '_' (at most 63)")
    ident = sql.Identifier(role)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    if password:
        conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(ident, sql.Literal(password)))
    else:
        conn.execute(sql.SQL(verb + " ROLE {} LOGIN").format(ident))
    dbname = conn.info.dbname
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(dbname), ident))
    # CREATE: a manual read in a month without a partition creates it (PostgreSQL flavour)
    conn.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(ident))
    conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(ident))
    conn.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(ident))
    hidden = []
    for table, secret in SECRET_COLUMNS.items():
        cols = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s"
            " ORDER BY ordinal_position", (table,))]
        visible = [c for c in cols if c not in secret]
        conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), ident))
        conn.execute(sql.SQL("GRANT SELECT ({}) ON {} TO {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in visible), sql.Identifier(table), ident))
        hidden += [f"{table}.{c}" for c in secret]
    conn.commit()
    return hidden
