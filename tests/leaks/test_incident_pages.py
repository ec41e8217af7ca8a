"""The pages show incidents: one running toilet is one incident on the fleet, meter and customer pages, its volume
lost counted once; a burst closed last week still shows (history), the customer is told about it."""

from __future__ import annotations

import re
from datetime import timedelta

import psycopg
from fastapi.testclient import TestClient
from leak_helpers import T0, household_day, readings
from test_alerts_db import insert

from api.app import create_app
from api.pages.auth import customer_signature
from meterflow.config import Settings
from pipelines.leaks import run_detection
from storage import alerts

TOKEN = "incident-pages-token"
H = timedelta(hours=1)
DAY = 24 * H


def toilet_and_burst() -> tuple[list[float], list[float]]:
    toilet = household_day() * 20
    for a, b in ((2, 6), (8, 13), (14, 20)):  # a running toilet at 5 L/h with pauses of 2 days and 1 day
        for k in range(a * 24, b * 24):
            toilet[k] += 5.0
    burst = household_day() * 20
    for k in range(10 * 24 + 8, 10 * 24 + 18):
        burst[k] += 3300.0  # 33 m3 in 10 hours, ten days before the end
    return toilet, burst


def test_one_running_toilet_is_one_incident_on_every_page(clean_db: psycopg.Connection, database_url: str) -> None:
    toilet, burst = toilet_and_burst()
    insert(clean_db, readings("TOILET", toilet))
    insert(clean_db, readings("BURST", burst))
    clean_db.execute("INSERT INTO meters (meter_id, customer_ref, district) VALUES ('TOILET', 'C-T', 'North'),"
                     " ('BURST', 'C-B', 'South')")
    clean_db.commit()
    settings = Settings.model_validate({"database_url": database_url, "timezone": "Europe/Warsaw",
                                        "api": {"tokens": [TOKEN], "customer_link_secret": "s3cret-0123456789abcdef",
                                                "as_of_for_customers": True}})  # simulated data: ?now= for all
    end = T0 + 20 * DAY
    run_detection(clean_db, settings, end, T0)
    rows = alerts.list_incidents(clean_db)
    assert sorted((r["meter_id"], r["kind"], r["state"]) for r in rows) == [
        ("BURST", "burst", "closed"), ("TOILET", "leak", "open")]
    toilet_row = next(r for r in rows if r["meter_id"] == "TOILET")
    assert abs(toilet_row["volume_m3"] - 15 * 24 * 5 / 1000) < 1e-9  # 1.8 m3: the rate over the hours, once
    now = "2026-06-20T23:00"
    auth = {"authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(settings, database_url)) as client:
        fleet = client.get(f"/dashboards/fleet?lang=en&now={now}", headers=auth)
        assert fleet.status_code == 200, fleet.text
        table = fleet.text[fleet.text.index('id="incidents-table"'):]
        table = table[:table.index("</table>")]
        assert table.count("/dashboards/meters/TOILET") == 1 and table.count("/dashboards/meters/BURST") == 1
        assert "open 1 · closed in the last 30 days 1" in fleet.text
        # the KPI counts each incident's volume once: 1.8 m3 (toilet) + the burst's 33 m3 above normal
        burst_row = next(r for r in rows if r["meter_id"] == "BURST")
        kpi = re.search(r"Est\. volume lost \(incidents, 30 days\)</div><div class=\"value\">([\d,.]+)", fleet.text)
        assert kpi and float(kpi.group(1).replace(",", "")) == round(1.8 + burst_row["volume_m3"], 1)
        meter = client.get(f"/dashboards/meters/TOILET?lang=en&now={now}", headers=auth)
        assert meter.status_code == 200
        mt = meter.text[meter.text.index('id="incidents-table"'):]
        assert mt[:mt.index("</table>")].count("<td>Leak</td>") == 1  # kinds by their label (dashboards.labels)
        cust = client.get(f"/c/C-T?sig={customer_signature(settings, 'C-T')}&now={now}&lang=en")
        assert cust.status_code == 200 and "Possible leak." in cust.text and "(about 5 litres per hour)" in cust.text
        other = client.get(f"/c/C-B?sig={customer_signature(settings, 'C-B')}&now={now}&lang=en")
        assert "No leak now." in other.text and "Burst: very high flow on meter BURST" in other.text
        assert "No leak detected" not in other.text
