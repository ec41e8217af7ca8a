"""A scratch database per benchmark run: created fresh on the server in force, dropped at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from storage.db import with_database


@contextmanager
def scratch_database(server: str, name: str, keep: bool = False,
                     echo: Callable[[str], None] = print) -> Iterator[str]:
    """The DSN of a new database `name` on `server` (a leftover of an earlier run is dropped first); dropped
    again at the end unless `keep`."""
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server, name)
    finally:
        if not keep:
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            echo(f"dropped {name}")
