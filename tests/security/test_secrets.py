"""Secrets stay secret (config, logs, exports, pages, error bodies), the web app's role cannot read keys,
and the demo never destroys a database it did not make."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sec_seed import BOOTSTRAP, MASTER, bearer

from api.app import create_app
from cli.main import cli
from meterflow.config import Settings, masked_dict
from storage.db import ensure_database, with_database

KEY = "A1B2C3D4E5F60718293A4B5C6D7E8F90"
PASSWORD = "Pa55-w0rd-very-secret"


def test_config_show_masks_every_password_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METERFLOW_DATABASE_URL", f"postgresql://u:{PASSWORD}@db/x?sslmode=require")
    monkeypatch.setenv("METERFLOW_TIMESCALE_URL", f"postgresql://db/x?user=u&password={PASSWORD}&sslmode=require")
    monkeypatch.setenv("METERFLOW_MQTT__URL", f"mqtts://gw:{PASSWORD}@broker:8883")
    refused = CliRunner().invoke(cli, ["config", "show"])  # a password in the broker URL is refused, unshown
    assert refused.exit_code != 0 and PASSWORD not in refused.output + str(refused.exception)
    monkeypatch.setenv("METERFLOW_MQTT__URL", "mqtts://broker:8883")
    monkeypatch.setenv("METERFLOW_MQTT__PASSWORD", PASSWORD)
    monkeypatch.setenv("METERFLOW_API__TOKENS", json.dumps([PASSWORD]))
    monkeypatch.setenv("METERFLOW_SECRETS__MASTER_KEY", MASTER)
    for fmt in ("json", "toml"):
        out = CliRunner().invoke(cli, ["config", "show", "--format", fmt])
        assert out.exit_code == 0, out.output
        assert PASSWORD not in out.output and MASTER not in out.output
        assert "sslmode=require" in out.output  # the rest of the URL is kept
    assert masked_dict(Settings())["timescale_url"] == "postgresql://db/x?user=u&password=***&sslmode=require"


def test_keys_tokens_and_passwords_never_leak(sec_settings: Settings, seeded_db: psycopg.Connection,
                                              client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    dsn = sec_settings.database_dsn() or ""
    for name, value in (("METERFLOW_DATABASE_URL", dsn), ("METERFLOW_DATA_DIR", str(sec_settings.data_dir)),
                        ("METERFLOW_SECRETS__MASTER_KEY", MASTER), ("METERFLOW_API__TOKENS", json.dumps([BOOTSTRAP]))):
        monkeypatch.setenv(name, value)
    keys = tmp_path / "keys.csv"
    keys.write_text(f"meter_id,key_hex\nM1,{KEY}\nM1,{KEY}\nNOPE,{KEY}\nM2,{KEY[:-2]}ZZ\n")
    runner = CliRunner()
    outputs = [runner.invoke(cli, ["keys", "import", str(keys)]).output]
    token_out = runner.invoke(cli, ["tokens", "add", "exporter", "--scope", "billing:read"])
    token = token_out.stdout.strip()
    assert token.startswith("mft_")
    outputs += [runner.invoke(cli, ["tokens", "list"]).output, runner.invoke(cli, ["tokens", "list", "--json"]).output]
    for fmt in ("table", "csv", "json"):
        outputs.append(runner.invoke(cli, ["meters", "list", "--format", fmt]).output)
    outputs.append(runner.invoke(cli, ["billing", "export", "--from", "2026-01-01", "--to", "2026-03-01",
                                       "--format", "csv"]).output)
    outputs.append(runner.invoke(cli, ["db", "status"]).output)
    pages = [client.get(p, headers=bearer(BOOTSTRAP)) for p in (
        "/dashboards/fleet?now=2026-03-01", "/dashboards/meters/M1?now=2026-03-01", "/openapi.json",
        "/api/v1/billing/consumption?from=2026-01-01&to=2026-03-01&format=csv")]
    pages.append(client.post("/login", data={"token": token + "x"}))
    pages.append(client.post("/api/v1/readings/manual", headers=bearer(token), json={"meter_id": KEY}))
    pages.append(client.get("/dashboards/fleet", headers=bearer(token)))
    text = "\n".join(outputs + [p.text + json.dumps(dict(p.headers)) for p in pages])
    text += "\n".join(r.getMessage() + json.dumps({k: str(v) for k, v in r.__dict__.items()}) for r in caplog.records)
    for secret in (KEY, KEY.lower(), MASTER, BOOTSTRAP, PASSWORD):
        assert secret not in text
    assert token not in "\n".join(outputs[1:]) and token not in text.replace(token_out.stdout, "")
    # the token worked until revoked by the command; then it is refused at once
    read = "/api/v1/billing/consumption?from=2026-01-01&to=2026-03-01"
    assert client.get(read, headers=bearer(token)).status_code == 200
    assert runner.invoke(cli, ["tokens", "revoke", "exporter"]).exit_code == 0
    assert client.get(read, headers=bearer(token)).status_code == 403
    assert runner.invoke(cli, ["tokens", "revoke", "exporter"]).exit_code == 1


def test_web_role_cannot_read_keys(sec_settings: Settings, seeded_db: psycopg.Connection) -> None:
    from storage.registry import import_keys
    from storage.roles import create_web_role

    import_keys(seeded_db, [{"meter_id": "M1", "key": bytes.fromhex(KEY)}])
    role = f"meterflow_web_test_{uuid.uuid4().hex[:6]}"
    try:
        assert create_web_role(seeded_db, role, PASSWORD) == ["meters.aes_key"]
        web_dsn = psycopg.conninfo.make_conninfo(sec_settings.database_dsn() or "", user=role, password=PASSWORD)
        with psycopg.connect(web_dsn) as web:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                web.execute("SELECT aes_key FROM meters")
            web.rollback()
            assert web.execute("SELECT count(*) FROM meters").fetchone() == (2,)
        with TestClient(create_app(sec_settings, web_dsn), follow_redirects=False) as c:
            assert c.get("/dashboards/fleet?now=2026-03-01", headers=bearer(BOOTSTRAP)).status_code == 200
            assert c.get("/dashboards/meters/M1?now=2026-03-01", headers=bearer(BOOTSTRAP)).status_code == 200
            r = c.post("/api/v1/readings/manual", headers=bearer(BOOTSTRAP),
                       json={"meter_id": "M1", "time": "2026-03-01T10:30:00+00:00", "index_m3": 121.705})
            assert r.status_code == 201, r.text
    finally:
        seeded_db.rollback()
        seeded_db.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(psycopg.sql.Identifier(role)))
        seeded_db.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(psycopg.sql.Identifier(role)))
        seeded_db.commit()


def test_demo_uses_the_named_database_and_never_drops_one(pg_server_uri: str, tmp_path: Path) -> None:
    from cli.demo import DemoDatabaseError, demo_database

    fresh = f"meterflow_demo_sec_{uuid.uuid4().hex[:6]}"
    theirs = f"meterflow_users_db_{uuid.uuid4().hex[:6]}"
    ensure_database(pg_server_uri, theirs)  # someone's database with their readings in it
    try:
        with psycopg.connect(with_database(pg_server_uri, theirs)) as conn:
            conn.execute("CREATE TABLE readings (meter_id text, total_m3 float8)")
            conn.execute("INSERT INTO readings VALUES ('precious', 1.0)")
            conn.commit()
        s = Settings(database_url=with_database(pg_server_uri, theirs), data_dir=tmp_path)
        with pytest.raises(DemoDatabaseError, match="was not made by the demo"):
            demo_database(s)
        with psycopg.connect(with_database(pg_server_uri, theirs)) as conn:
            assert conn.execute("SELECT meter_id FROM readings").fetchall() == [("precious",)]
        made = Settings(database_url=with_database(pg_server_uri, fresh), data_dir=tmp_path)
        dsn = demo_database(made)  # missing: created, and marked as the demo's own
        assert psycopg.conninfo.conninfo_to_dict(dsn)["dbname"] == fresh
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT value FROM meterflow_meta WHERE key = 'demo_database'").fetchone() == ("true",)
        out = CliRunner().invoke(cli, ["demo", "--meters", "5", "--days", "1"],
                                 env={"METERFLOW_DATABASE_URL": with_database(pg_server_uri, theirs)})
        assert out.exit_code == 1 and "was not made by the demo" in out.output
    finally:
        with psycopg.connect(pg_server_uri, autocommit=True) as admin:
            for name in (fresh, theirs):  # both made by this test
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
