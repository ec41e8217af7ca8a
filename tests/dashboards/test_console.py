"""The dispatcher's console through the real app and database: the alert workflow and its audit, the work
lists (filters, sorting, paging, CSV), search, and the district water balance."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta

import polars as pl
import psycopg
import pytest
from console_seed import NETWORK_LEAK_L_H, WEST_INLET_L_H, console_seeded
from dash_seed import NOW, NOW_PARAM, TOKEN, Seeded, shows, web_settings_for
from fastapi.testclient import TestClient

from api.app import create_app
from storage import alert_workflow as wf
from storage import chart_queries as q
from storage import worklists

__all__ = ["console_seeded"]
AUTH = {"authorization": f"Bearer {TOKEN}"}
TZ = "Europe/Warsaw"
TODAY = NOW.date()


@pytest.fixture
def conn(console_seeded: Seeded) -> Iterator[psycopg.Connection]:
    with psycopg.connect(console_seeded.dsn) as c:
        yield c


@pytest.fixture
def client(console_seeded: Seeded) -> Iterator[TestClient]:
    settings = web_settings_for(console_seeded.dsn)
    with TestClient(create_app(settings, console_seeded.dsn), follow_redirects=False) as c:
        yield c


def _ids(page: worklists.Page, key: str = "meter_id") -> list[str]:
    return [r[key] for r in page.rows]


def test_no_reads_count_radio_only_and_skip_removed_meters(conn: psycopg.Connection) -> None:
    two = worklists.fetch(conn, "no-reads", worklists.Query(), NOW, TZ)
    assert _ids(two) == ["M4", "M5"] and two.days == 2  # never heard; M6 is removed; M3 fell silent 2 days ago
    one = worklists.fetch(conn, "no-reads", worklists.Query(days=1, sort="meter_id"), NOW, TZ)
    assert _ids(one) == ["M3", "M4", "M5"]
    # M4's manual read an hour ago neither made it "heard" nor credited a gateway
    assert conn.execute("SELECT count(*) FROM meter_last_heard WHERE meter_id = 'M4'").fetchone() == (0,)
    assert worklists.fetch(conn, "no-reads", worklists.Query(days=1, district="South"), NOW, TZ).total == 2
    assert _ids(worklists.fetch(conn, "no-reads", worklists.Query(days=1, gateway="GW2"), NOW, TZ)) == ["M3"]
    assert _ids(worklists.fetch(conn, "no-reads", worklists.Query(days=1, street="pol"), NOW, TZ)) == ["M3", "M4"]


def test_zero_reads_stuck_verification_and_dead_letters(conn: psycopg.Connection) -> None:
    zero = worklists.fetch(conn, "zero-reads", worklists.Query(), NOW, TZ)
    assert _ids(zero) == ["M7"] and zero.rows[0]["index_m3"] == 55.5 and zero.rows[0]["days_read"] >= 7
    due = worklists.fetch(conn, "verification", worklists.Query(days=30), NOW, TZ)
    assert _ids(due) == ["M5"] and due.rows[0]["days_left"] == 29
    assert worklists.fetch(conn, "verification", worklists.Query(), NOW, TZ).total == 2  # M4 in May too
    dead = worklists.fetch(conn, "dead-letters", worklists.Query(), NOW, TZ)
    assert [(r["error_code"], r["frames"]) for r in dead.rows] == [("no_key", 3), ("bad_crc", 1),
                                                                  ("unknown_manufacturer", 1)]
    assert worklists.fetch(conn, "stuck", worklists.Query(), NOW, TZ).total == 0


def test_open_supply_interruptions_are_incidents(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO interruptions (kind, cause, district, street, start_at, meters) VALUES"
                 " ('supply', 'standstill', 'South', 'Polna', %s, '{M3,M4}'),"
                 " ('communication', 'silence', 'East', NULL, %s, '{M5}')",
                 (NOW - timedelta(hours=3), NOW + timedelta(hours=1)))  # the second starts after NOW
    conn.commit()
    try:
        south = worklists.fetch(conn, "incidents", worklists.Query(district="South"), NOW, TZ)
        assert [(r["kind"], r["street"], r["address"], r["severity"]) for r in south.rows] == [
            ("interruption", "Polna", "Polna (2 meters, standstill)", "critical")]
        everything = worklists.fetch(conn, "incidents", worklists.Query(), NOW, TZ)
        assert [r["kind"] for r in everything.rows] == ["continuous_flow", "interruption"]
    finally:
        conn.execute("DELETE FROM interruptions")
        conn.commit()


def test_lists_sort_and_page(conn: psycopg.Connection) -> None:
    asc = worklists.fetch(conn, "no-reads", worklists.Query(days=1, sort="meter_id", descending=False,
                                                            per_page=2), NOW, TZ)
    assert _ids(asc) == ["M3", "M4"] and asc.total == 3 and asc.pages == 2
    page2 = worklists.fetch(conn, "no-reads", worklists.Query(days=1, sort="meter_id", descending=False,
                                                              per_page=2, page=2), NOW, TZ)
    assert _ids(page2) == ["M5"] and page2.total == 3
    beyond = worklists.fetch(conn, "no-reads", worklists.Query(days=1, per_page=2, page=5), NOW, TZ)
    assert beyond.rows == [] and beyond.total == 3
    desc = worklists.fetch(conn, "no-reads", worklists.Query(days=1, sort="meter_id", descending=True), NOW, TZ)
    assert _ids(desc) == ["M5", "M4", "M3"]
    # an unknown sort column falls back to the list's default instead of reaching SQL
    bad = worklists.fetch(conn, "no-reads", worklists.Query(sort="1; DROP TABLE meters"), NOW, TZ)
    assert bad.sort == "days_silent"


def test_search_finds_meters_customers_premises_and_addresses(conn: psycopg.Connection) -> None:
    assert [m["meter_id"] for m in worklists.search(conn, "M2")] == ["M2"]
    assert [m["meter_id"] for m in worklists.search(conn, "c-a")] == ["M1", "M2"]
    assert [m["meter_id"] for m in worklists.search(conn, "P-M3")] == ["M3"]
    assert [m["meter_id"] for m in worklists.search(conn, "polna")] == ["M3", "M4", "M6"]  # removed one last
    assert [m["meter_id"] for m in worklists.search(conn, "lipowa 3")] == ["M2"]
    assert worklists.search(conn, "%") == [] and worklists.search(conn, "  ") == []


def test_workflow_records_who_did_what(conn: psycopg.Connection) -> None:
    alert_id = conn.execute("SELECT id FROM alerts WHERE meter_id = 'M3' AND kind = 'silent'").fetchone()[0]
    wf.act(conn, alert_id, "acknowledge", "anna")
    wf.act(conn, alert_id, "assign", "anna", assignee="bob", note="site visit today")
    wf.act(conn, alert_id, "comment", "bob", note="battery flat")
    with pytest.raises(wf.WorkflowError, match="reason"):
        wf.act(conn, alert_id, "close", "bob", reason="bored")
    wf.act(conn, alert_id, "close", "bob", reason="meter_exchanged")
    with pytest.raises(wf.WorkflowError, match="closed"):
        wf.act(conn, alert_id, "acknowledge", "anna")
    alert = wf.get_alert(conn, alert_id)
    assert (alert["state"], alert["close_reason"], alert["closed_by"], alert["acknowledged_by"],
            alert["assigned_to"]) == ("resolved", "meter_exchanged", "bob", "anna", "bob")
    wf.act(conn, alert_id, "reopen", "anna", note="still silent")
    assert wf.get_alert(conn, alert_id)["state"] == "open" and wf.get_alert(conn, alert_id)["closed_by"] is None
    trail = [(e.actor, e.action, e.details.get("assignee") or e.details.get("reason")) for e in
             wf.events(conn, alert_id=alert_id)]
    assert trail == [("anna", "acknowledge", None), ("anna", "assign", "bob"), ("bob", "comment", None),
                     ("bob", "close", "meter_exchanged"), ("anna", "reopen", None)]
    with pytest.raises(wf.WorkflowError):
        wf.act(conn, alert_id, "comment", "  ", note="who am I")
    with pytest.raises(wf.AlertNotFound):
        wf.act(conn, 999_999, "acknowledge", "anna")


def test_water_balance_reveals_the_network_leak(conn: psycopg.Connection) -> None:
    balance = q.water_balance(conn, TODAY - timedelta(days=10), TODAY)
    north = balance.filter((pl.col("district") == "North") & pl.col("nrw_m3").is_not_null())
    assert north.height == 10
    # input minus billed = the 20 L/h no customer meter sees, every day
    assert north["nrw_m3"].to_list() == pytest.approx([NETWORK_LEAK_L_H * 24 / 1000.0] * 10, abs=1e-6)
    west = balance.filter(pl.col("district") == "West")
    assert west["input_m3"].to_list() == pytest.approx([WEST_INLET_L_H * 24 / 1000.0] * 10, abs=1e-6)
    assert west["mnf_l_h"].to_list() == pytest.approx([WEST_INLET_L_H] * 10, abs=1e-6)
    assert west["nrw_pct"].to_list() == pytest.approx([100.0] * 10)
    # the night flow of North's input = the customers' night use + the network leak, above the leak alone
    mnf = north["mnf_l_h"].to_list()
    assert min(mnf) > NETWORK_LEAK_L_H and min(mnf[1:]) > NETWORK_LEAK_L_H + 30  # M2 leaks 30 L/h from day 2
    ranking = q.balance_ranking(balance)
    assert ranking["district"].to_list() == ["West", "North"]
    # district consumption counts customer meters only (not the inlet)
    dd = q.district_daily(conn, ["North"], TODAY - timedelta(days=3), TODAY)
    assert dd["consumption_m3"].to_list() == pytest.approx(north["billed_m3"].to_list()[-3:])


def test_workflow_api_and_pages(client: TestClient, conn: psycopg.Connection) -> None:
    alert_id = conn.execute("SELECT id FROM alerts WHERE meter_id = 'M2' AND kind = 'continuous_flow'").fetchone()[0]
    r = client.post(f"/api/v1/alerts/{alert_id}/acknowledge", json={"note": "on it"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "analyst"
    r = client.post(f"/api/v1/alerts/{alert_id}/assign", json={"assignee": "crew-7"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["assigned_to"] == "crew-7"
    r = client.post(f"/api/v1/alerts/{alert_id}/close", json={"reason": "nonsense"}, headers=AUTH)
    assert r.status_code == 422
    r = client.post(f"/api/v1/alerts/{alert_id}/close", json={"reason": "repaired", "note": "valve"}, headers=AUTH)
    assert r.status_code == 200 and (r.json()["state"], r.json()["closed_by"]) == ("resolved", "analyst")
    assert client.post(f"/api/v1/alerts/{alert_id}/close", json={"reason": "repaired"}, headers=AUTH).status_code == 409
    assert client.post(f"/api/v1/alerts/{alert_id}/acknowledge", json={}).status_code == 401
    audit = client.get(f"/api/v1/audit?alert={alert_id}", headers=AUTH).json()
    assert [(e["actor"], e["action"]) for e in audit] == [("analyst", "acknowledge"), ("analyst", "assign"),
                                                          ("analyst", "close")]
    page = client.get(f"/dashboards/alerts/{alert_id}?now={NOW_PARAM}", headers=AUTH)
    assert page.status_code == 200 and "crew-7" in page.text and "repaired by analyst" in page.text
    meter = client.get(f"/dashboards/meters/M2?now={NOW_PARAM}", headers=AUTH)
    assert 'id="meter-events"' in meter.text and "crew-7" in meter.text and "data as of" in meter.text
    # the page's forms act as the signed-in user and come back to the alert
    r = client.post(f"/dashboards/alerts/{alert_id}/reopen", data={"note": "dripping again"}, headers=AUTH)
    assert r.status_code == 303 and r.headers["location"] == f"/dashboards/alerts/{alert_id}"
    r = client.post(f"/dashboards/alerts/{alert_id}/reopen", data={}, headers=AUTH)
    assert "error=" in r.headers["location"]
    assert wf.get_alert(conn, alert_id)["state"] == "open"


def test_list_pages_csv_and_search_redirect(client: TestClient) -> None:
    page = client.get(f"/dashboards/lists/no-reads?now={NOW_PARAM}&district=South&days=1", headers=AUTH)
    assert page.status_code == 200 and "M3" in page.text and "M4" in page.text and not shows(page.text, "M5")
    assert "data as of" in page.text and 'id="export-csv"' in page.text
    r = client.get(f"/dashboards/lists/no-reads?now={NOW_PARAM}&days=1&format=csv&sort=meter_id&order=asc",
                   headers=AUTH)
    assert r.headers["content-type"].startswith("text/csv") and "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["meter_id"] for row in rows] == ["M3", "M4", "M5"] and rows[1]["last_heard"] == ""
    assert rows[0]["gateway_id"] == "GW2" and rows[0]["last_heard"].startswith("2026-02-27T11:00:00")
    api = client.get(f"/api/v1/lists/zero-reads?now={NOW_PARAM}", headers=AUTH).json()
    assert api["total"] == 1 and api["rows"][0]["meter_id"] == "M7"
    assert client.get("/api/v1/lists/nope", headers=AUTH).status_code == 404
    r = client.get(f"/dashboards/search?q=lipowa%203&now={NOW_PARAM}", headers=AUTH)
    assert r.status_code == 303
    assert r.headers["location"] == f"/dashboards/meters/M2?now={NOW_PARAM.replace(':', '%3A')}"
    many = client.get("/dashboards/search?q=c-a", headers=AUTH)
    assert many.status_code == 200 and "/dashboards/meters/M1" in many.text
    balance = client.get(f"/dashboards/balance?now={NOW_PARAM}&days=10", headers=AUTH)
    assert balance.status_code == 200 and "chart-balance-ranking" in balance.text and "West" in balance.text
    fleet = client.get(f"/dashboards/fleet?now={NOW_PARAM}&district=South", headers=AUTH).text
    assert f'href="/dashboards/lists/no-reads?district=South&amp;now={NOW_PARAM.replace(":", "%3A")}"' in fleet
    ranked = fleet[fleet.index('id="fleet-balance"'):]
    assert ranked.index("West") < ranked.index("North")  # worst non-revenue water first
    for name in worklists.LISTS:
        assert client.get(f"/dashboards/lists/{name}?now={NOW_PARAM}", headers=AUTH).status_code == 200


def test_alerts_and_lists_commands(console_seeded: Seeded, conn: psycopg.Connection) -> None:
    from click.testing import CliRunner

    from cli.commands.alerts import alerts, lists

    settings = web_settings_for(console_seeded.dsn)
    runner = CliRunner()
    alert_id = conn.execute("SELECT id FROM alerts WHERE meter_id = 'M2' AND kind = 'continuous_flow'"
                            " AND state = 'open'").fetchone()[0]
    for args in (["ack", str(alert_id), "--by", "ewa"], ["assign", str(alert_id), "--to", "crew-9", "--by", "ewa"],
                 ["close", str(alert_id), "--reason", "customer_informed", "--by", "ewa", "--note", "letter"]):
        result = runner.invoke(alerts, args, obj=settings)
        assert result.exit_code == 0, result.output
    again = runner.invoke(alerts, ["close", str(alert_id), "--reason", "repaired", "--by", "ewa"], obj=settings)
    assert again.exit_code == 1 and "already closed" in again.output
    listed = runner.invoke(alerts, ["list", "--state", "all", "--kind", "continuous_flow", "--json"], obj=settings)
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["id"], r["assigned_to"], r["closed_by"], r["kind_label"]) for r in rows] == [
        (alert_id, "crew-9", "ewa", "Continuous flow (leak)")]
    shown = runner.invoke(alerts, ["show", str(alert_id)], obj=settings)
    assert "closed_by        ewa" in shown.output and "customer_informed" in shown.output
    audit = runner.invoke(alerts, ["audit", "--by", "ewa"], obj=settings)
    assert [line.split(",")[2] for line in audit.stdout.strip().splitlines()[1:]] == ["acknowledge", "assign",
                                                                                      "close"]
    out = runner.invoke(lists, ["no-reads", "--days", "1", "--sort", "meter_id", "--asc", "--now", NOW_PARAM],
                        obj=settings)
    assert out.exit_code == 0, out.output
    assert [line.split(",")[0] for line in out.stdout.strip().splitlines()] == ["meter_id", "M3", "M4", "M5"]


def test_leak_detection_leaves_inlet_meters_to_the_water_balance(conn: psycopg.Connection) -> None:
    from storage.alerts import load_input

    meters = set(load_input(conn, NOW - timedelta(days=2), NOW)["meter_id"].to_list())
    assert {"M1", "M2", "M7"} <= meters and not meters & {"IN-N", "IN-W"}


def test_a_removed_meter_falls_silent_without_an_alert(clean_db: psycopg.Connection, settings: object) -> None:
    from pipelines.leaks import run_detection

    conn = clean_db
    conn.execute("INSERT INTO meters (meter_id, district, removal_date)"
                 " VALUES ('R1', 'North', %s), ('A1', 'North', NULL)", ((NOW - timedelta(days=5)).date(),))
    conn.execute(
        """INSERT INTO readings (meter_id, time, total_m3, gateway_id, received_at)
           SELECT m, t, 10 + extract(epoch FROM t - %(lo)s) / 3600.0 * 0.01, 'GW1', t
           FROM (VALUES ('R1', %(r_end)s::timestamptz), ('A1', %(a_end)s::timestamptz)) v(m, last),
                generate_series(%(lo)s, %(now)s, interval '1 hour') t WHERE t <= last""",
        {"lo": NOW - timedelta(days=9), "now": NOW, "r_end": NOW - timedelta(days=5) + timedelta(hours=2),
         "a_end": NOW - timedelta(days=3)})
    conn.commit()
    run = run_detection(conn, settings, NOW, NOW - timedelta(days=7))  # type: ignore[arg-type]
    silent = conn.execute("SELECT meter_id FROM alerts WHERE kind = 'silent'").fetchall()
    assert silent == [("A1",)], run.detections
