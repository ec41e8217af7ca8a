"""Attacks on `meterflow serve` through the real app and database, each refused."""

from __future__ import annotations

import logging
import re

import psycopg
import pytest
from fastapi.testclient import TestClient
from sec_seed import BOOTSTRAP, bearer

from api.app import create_app
from meterflow.config import Settings
from storage.tokens import add_token

HTML = {"accept": "text/html"}


def _token(conn: psycopg.Connection, name: str, *scopes: str) -> str:
    return add_token(conn, name, list(scopes))


# --------------------------------------------------------------------------------------------- headers, docs


def test_security_headers_on_every_response(client: TestClient) -> None:
    for path, headers in (("/healthz", {}), ("/login", {}), ("/docs", {}), ("/openapi.json", {}),
                          ("/nope", {}), ("/dashboards/fleet", {}), ("/c/C-A", {}),
                          ("/static/plotly.min.js", {}), ("/static/swagger-ui/swagger-ui.css", {})):
        r = client.get(path, headers=headers)
        assert r.status_code < 500, path
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0], path
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"


def test_docs_are_served_by_the_app_itself(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r"(?:src|href)='([^']+)'", page.text)
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources)  # no CDN
    assert "<script>" not in page.text  # no inline script: the strict CSP holds on /docs too
    for s in sources:
        assert client.get(s).status_code == 200, s
    assert "SwaggerUIBundle" in client.get("/static/swagger-ui/swagger-ui-bundle.js").text


# --------------------------------------------------------------------------------------------- values


def test_absurd_manual_reads_are_refused_and_nothing_is_stored(client: TestClient,
                                                               seeded_db: psycopg.Connection) -> None:
    token = _token(seeded_db, "self-reads", "readings:write")
    before = seeded_db.execute("SELECT count(*) FROM readings").fetchone()
    seeded_db.rollback()
    good_time = "2026-02-15T12:30:00+01:00"
    for raw in ('"NaN"', "NaN", "Infinity", "-Infinity", "1e400", "1e308", "-5", "100000"):
        body = f'{{"meter_id": "M1", "time": "{good_time}", "index_m3": {raw}}}'
        r = client.post("/api/v1/readings/manual", content=body,
                        headers={**bearer(token), "content-type": "application/json"})
        assert r.status_code == 422, (raw, r.status_code, r.text)
    for when in ("1999-06-01T00:00:00+00:00", "2999-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00"):
        r = client.post("/api/v1/readings/manual", headers=bearer(token),
                        json={"meter_id": "M1", "time": when, "index_m3": 1.0})
        assert r.status_code == 422, (when, r.text)
    # NUL bytes anywhere: a clear 4xx, never 500
    r = client.post("/api/v1/readings/manual", headers=bearer(token),
                    json={"meter_id": "M\x001", "time": good_time, "index_m3": 1.0, "note": "a\x00b"})
    assert r.status_code == 422
    assert client.get("/dashboards/meters/M%001", headers=bearer(BOOTSTRAP)).status_code == 400
    assert client.get("/dashboards/fleet?now=%00", headers=bearer(BOOTSTRAP)).status_code == 400
    seeded_db.rollback()
    assert seeded_db.execute("SELECT count(*) FROM readings").fetchone() == before


def test_manual_read_is_checked_against_both_neighbours_and_names_who(client: TestClient,
                                                                      seeded_db: psycopg.Connection) -> None:
    token = _token(seeded_db, "portal", "readings:write")
    seeded_db.execute("DELETE FROM readings WHERE meter_id = 'M1' AND time > '2026-02-10' AND time < '2026-02-20'")
    seeded_db.commit()
    later = seeded_db.execute("SELECT total_m3 FROM readings WHERE meter_id = 'M1' AND time >= '2026-02-20'"
                              " ORDER BY time LIMIT 1").fetchone()
    seeded_db.rollback()
    assert later is not None
    backdated = {"meter_id": "M1", "time": "2026-02-15T00:00:00+00:00", "index_m3": later[0] + 50}
    r = client.post("/api/v1/readings/manual", headers=bearer(token), json=backdated)
    assert r.status_code == 422 and "above the later index" in r.json()["detail"]
    fits = {**backdated, "index_m3": later[0] - 0.5, "index_m3_note": None}
    r = client.post("/api/v1/readings/manual", headers=bearer(token), json=fits)
    assert r.status_code == 201, r.text
    seeded_db.rollback()
    row = seeded_db.execute("SELECT fields->>'entered_by' FROM readings WHERE meter_id = 'M1'"
                            " AND time = '2026-02-15T00:00:00+00:00'").fetchone()
    assert row == ("portal",)


def test_as_of_far_away_is_refused_not_500(client: TestClient) -> None:
    for value in ("9999-12-31", "0001-01-01", "2026-13-45", "1e400"):
        r = client.get(f"/dashboards/fleet?now={value}", headers=bearer(BOOTSTRAP))
        assert r.status_code == 422, value


# --------------------------------------------------------------------------------------------- bodies


def test_huge_bodies_are_refused_and_errors_never_echo_input(client: TestClient, seeded_db: psycopg.Connection) -> None:
    token = _token(seeded_db, "echo", "readings:write")
    ten_mb = "x" * 10_000_000
    r = client.post("/api/v1/readings/manual", headers=bearer(token),
                    json={"meter_id": "M1", "time": "2026-02-15T00:00:00+00:00", "index_m3": 1, "note": ten_mb})
    assert r.status_code == 413 and len(r.content) < 1000
    marker = "ECHO-" + "y" * 50_000
    r = client.post("/api/v1/readings/manual", headers=bearer(token),
                    json={"meter_id": "M1", "time": "2026-02-15T00:00:00+00:00", "index_m3": 1, "note": marker})
    assert r.status_code == 422 and "ECHO-" not in r.text and len(r.content) < 2000
    r = client.post("/api/v1/readings/manual", headers=bearer(token),
                    json={"meter_id": marker, "time": "not a time", "index_m3": "abc"})
    assert r.status_code == 422 and "ECHO-" not in r.text


# --------------------------------------------------------------------------------------------- tokens, sessions


def test_tokens_have_scopes_and_are_stored_hashed(client: TestClient, seeded_db: psycopg.Connection) -> None:
    billing = _token(seeded_db, "billing-system", "billing:read")
    writer = _token(seeded_db, "meter-app", "readings:write")
    read = {"from": "2026-01-01", "to": "2026-03-01"}
    assert client.get("/api/v1/billing/consumption", params=read, headers=bearer(billing)).status_code == 200
    assert client.get("/api/v1/billing/consumption", params=read, headers=bearer(writer)).status_code == 403
    manual = {"meter_id": "M1", "time": "2026-03-01T10:30:00+00:00", "index_m3": 130.0}
    assert client.post("/api/v1/readings/manual", json=manual, headers=bearer(billing)).status_code == 403
    assert client.get("/dashboards/fleet", headers=bearer(billing)).status_code == 403
    stored = seeded_db.execute("SELECT token_sha256::text, scopes FROM api_tokens ORDER BY name").fetchall()
    seeded_db.rollback()
    assert all(billing not in s and writer not in s for s, _ in stored)
    assert [sorted(s) for _, s in stored] == [["billing:read"], ["readings:write"]]
    from storage.tokens import revoke_token

    revoke_token(seeded_db, "billing-system")
    assert client.get("/api/v1/billing/consumption", params=read, headers=bearer(billing)).status_code == 403


def test_login_cookie_is_a_session_secure_over_https_and_logout_ends_it(seeded_db: psycopg.Connection,
                                                                        sec_settings: Settings) -> None:
    analyst = _token(seeded_db, "anna", "analyst")
    dsn = sec_settings.database_dsn() or ""
    with TestClient(create_app(sec_settings, dsn), base_url="https://testserver", follow_redirects=False) as c:
        r = c.post("/login", data={"token": analyst, "next": "/dashboards/fleet"})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and analyst not in cookie
        session = cookie.split(";")[0].split("=", 1)[1]
        assert c.get("/dashboards/fleet?now=2026-03-01").status_code == 200
        assert c.get("/logout").status_code == 303
        c.cookies.set("meterflow_session", session)  # the old cookie, replayed
        assert c.get("/dashboards/fleet?now=2026-03-01").status_code == 403
    with TestClient(create_app(sec_settings, dsn), follow_redirects=False) as plain:
        r = plain.post("/login", data={"token": analyst})
        assert "Secure" not in r.headers["set-cookie"]


def test_failed_logins_are_rate_limited_and_logged(client: TestClient, seeded_db: psycopg.Connection,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    guesses = [client.post("/login", data={"token": f"guess-{i}"}).status_code for i in range(8)]
    assert guesses[:5] == [303] * 5 and guesses[5:] == [429] * 3
    # the right token is refused too while the address is blocked: guessing stays slow
    assert client.post("/login", data={"token": BOOTSTRAP}).status_code == 429
    refused = [r for r in caplog.records if r.getMessage() == "login refused"]
    assert len(refused) == 9 and all(getattr(r, "client", None) == "testclient" for r in refused)
    assert not any("guess-" in r.getMessage() + str(r.__dict__) for r in caplog.records)


def test_wrong_bearer_tokens_are_rate_limited_too(client: TestClient) -> None:
    codes = [client.get("/api/v1/billing/consumption?from=2026-01-01&to=2026-02-01",
                        headers=bearer(f"guess-{i}")).status_code for i in range(7)]
    assert codes == [403] * 5 + [429] * 2
    assert client.get("/dashboards/fleet", headers=bearer(BOOTSTRAP)).status_code == 429


def test_analyst_name_is_recorded(client: TestClient, seeded_db: psycopg.Connection) -> None:
    from api.pages.auth import require_analyst, require_scope

    assert callable(require_analyst) and callable(require_scope("billing:read"))
    token = _token(seeded_db, "dispatcher-1", "analyst", "readings:write")
    r = client.post("/api/v1/readings/manual", headers=bearer(token),
                    json={"meter_id": "M1", "time": "2026-03-01T10:45:00+00:00", "index_m3": 121.705})
    assert r.status_code == 201, r.text
    seeded_db.rollback()
    assert seeded_db.execute("SELECT fields->>'entered_by' FROM readings WHERE source = 'manual'").fetchall() == [
        ("dispatcher-1",)]


# --------------------------------------------------------------------------------------------- exports


def test_csv_cells_that_look_like_formulas_are_escaped(client: TestClient, seeded_db: psycopg.Connection) -> None:
    run = seeded_db.execute("INSERT INTO billing_runs (period_start, period_end, config, status) VALUES"
                            " ('2026-01-01', '2026-02-01', '{}', 'finished') RETURNING run_id").fetchone()
    assert run is not None
    for meter in ("=1+2", "@SUM(A1)", "+cmd", "-2+3", "M1"):
        seeded_db.execute("INSERT INTO meters (meter_id) VALUES (%s) ON CONFLICT DO NOTHING", (meter,))
        seeded_db.execute("INSERT INTO billing_results (run_id, meter_id, period_start, period_end, consumption_m3,"
                          " quality, method) VALUES (%s, %s, '2026-01-01', '2026-02-01', -1.5, 'ACTUAL', '=x')",
                          (run[0], meter))
    seeded_db.commit()
    r = client.get("/api/v1/billing/consumption?from=2026-01-01&to=2026-02-01&format=csv", headers=bearer(BOOTSTRAP))
    assert r.status_code == 200
    cells = [line.split(",")[0] for line in r.text.splitlines()[1:]]
    assert sorted(cells) == sorted(["'+cmd", "'-2+3", "'=1+2", "'@SUM(A1)", "M1"])
    assert all(",-1.5," in line and ",'=x," in line for line in r.text.splitlines()[1:])  # numbers stay numbers


def test_work_list_csv_escapes_formulas(client: TestClient, seeded_db: psycopg.Connection) -> None:
    seeded_db.execute("INSERT INTO meters (meter_id, district) VALUES ('=HYPERLINK(\"x\")', '+North')")
    seeded_db.commit()
    r = client.get("/dashboards/lists/no-reads?format=csv&now=2026-03-01T12:00", headers=bearer(BOOTSTRAP))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    row = next(line for line in r.text.splitlines() if "HYPERLINK" in line)
    assert row.startswith("\"'=HYPERLINK") and ",'+North," in row
