"""The whole path on the real database, app and local SMS/e-mail servers: a simulated street loses water,
the hourly step opens an interruption, each subscriber of that street gets exactly one message, the maps
and the customer page show it, and restoration closes it with a second message."""

from __future__ import annotations

import email
import io
import json
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import polars as pl
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.pages.auth import customer_signature
from fixtures.interruptions import AreaConfig, AreaEvent, build_area, default_events
from meterflow.config import Settings
from pipelines.interruptions import run_interruptions
from storage.flavor import ensure_partitions
from storage.registry import import_meters, parse_meters_csv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "leaks"))
from test_notify import http_server, smtp_server  # the real local servers of the notify tests

__all__ = ["http_server", "smtp_server"]
TOKEN = "dispatch-token"
SECRET = "customer-secret-0123456789"  # 16+ characters: a short link secret is refused
H = timedelta(hours=1)


def _load(conn: psycopg.Connection, registry: pl.DataFrame, readings: pl.DataFrame) -> None:
    buf = io.StringIO()
    registry.write_csv(buf)
    parsed = parse_meters_csv(buf.getvalue())
    assert parsed.errors == []
    import_meters(conn, parsed)
    add_readings(conn, readings)


def add_readings(conn: psycopg.Connection, readings: pl.DataFrame) -> None:
    lo, hi = readings.get_column("time").min(), readings.get_column("time").max()
    assert isinstance(lo, datetime) and isinstance(hi, datetime)
    ensure_partitions(conn, lo, hi)
    with conn.cursor() as cur, cur.copy("COPY readings (meter_id, time, total_m3, alarms) FROM STDIN") as cp:
        for row in readings.iter_rows():
            cp.write_row(row)
    conn.commit()


@pytest.fixture
def app_settings(clean_db: psycopg.Connection, database_url: str, http_server, smtp_server) -> Settings:  # type: ignore[no-untyped-def]
    port = http_server.server_address[1]
    return Settings.model_validate({
        "database_url": database_url, "timezone": "Europe/Warsaw",
        "api": {"tokens": [TOKEN], "customer_link_secret": SECRET},
        "notify": {"sms_url": f"http://127.0.0.1:{port}/sms", "smtp_host": "127.0.0.1",
                   "smtp_port": smtp_server.server_address[1]},
        "interruptions": {"sms_inbound_secret": "gw-secret"}})


@pytest.fixture
def client(app_settings: Settings, database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings, database_url), follow_redirects=False) as c:
        yield c


def _sms(http_server) -> list[dict[str, list[str]]]:  # type: ignore[no-untyped-def]
    return [parse_qs(body.decode()) for path, _, body in http_server.received if path == "/sms"]


def test_a_street_loses_water_and_gets_it_back(clean_db: psycopg.Connection, app_settings: Settings,
                                               client: TestClient, http_server, smtp_server) -> None:  # type: ignore[no-untyped-def]
    cfg = AreaConfig(days=14, seed=5, consent_share=0.25)
    cut = default_events(cfg)[0]
    area = build_area(AreaConfig(days=14, seed=5, consent_share=0.25, events=(cut,)))
    before = cut.start + 3 * H  # the cut is 3 hours old
    _load(clean_db, area.registry, area.readings_until(before))
    auth = {"authorization": f"Bearer {TOKEN}"}

    # subscribers of Lipowa: one by API (e-mail), one by SMS keyword, one that stops; consenting premises
    r = client.post("/api/v1/interruptions/subscriptions", json={"street": "lipowa", "email": "ops@example.org"},
                    headers=auth)
    assert r.status_code == 201 and r.json()["street"] == "Lipowa"
    assert client.post("/api/v1/interruptions/subscriptions", json={"street": "Lipowa"}, headers=auth).status_code \
        == 422
    assert client.post("/api/v1/sms/inbound?secret=wrong", data={"from": "+48700000001", "text": "ADD Lipowa"}
                       ).status_code == 403
    for sender, text in (("+48700000001", "ADD  lipowa"), ("+48700000002", "ADD Lipowa"), ("+48700000002", "STOP"),
                         ("+48700000003", "ADD Nowhere Street")):
        reply = client.post("/api/v1/sms/inbound?secret=gw-secret", data={"from": sender, "text": text})
        assert reply.status_code == 200
    assert "do not know a street" in reply.text
    consenting = area.registry.filter(pl.col("notice_consent") & (pl.col("street") == "Lipowa"))
    phones = sorted(["+48700000001", *consenting.get_column("phone").to_list()])
    assert len(phones) >= 2

    out = run_interruptions(clean_db, app_settings, before, notify=True, dry_run=False)
    assert out["opened"] == 1 and out["notices"]["sent"] == len(phones) + 1
    texts = _sms(http_server)
    assert sorted(t["to"][0] for t in texts) == phones  # exactly one each, nobody else
    local_start = cut.start.astimezone(ZoneInfo("Europe/Warsaw")).strftime("%d.%m.%Y %H:%M")
    assert all(t["text"][0].startswith(f"No water in Lipowa since {local_start}") for t in texts)
    mail = email.message_from_bytes(smtp_server.messages[0])
    assert mail["To"] == "ops@example.org" and "interrupted" in mail["Subject"]

    # the next hour: still off, nothing new to say
    add_readings(clean_db, area.readings.filter((pl.col("time") >= before) & (pl.col("time") < before + H)))
    again = run_interruptions(clean_db, app_settings, before + H, notify=True, dry_run=False)
    assert again["opened"] == 0 and again["notices"]["sent"] == 0 and len(_sms(http_server)) == len(phones)

    # maps, GeoJSON and the customer page show it
    lipowa = area.registry.filter(pl.col("street") == "Lipowa")
    geo = client.get("/api/v1/interruptions.geojson", headers=auth).json()
    dry = [f for f in geo["features"] if f["properties"].get("no_water")]
    assert sorted(f["properties"]["meter_id"] for f in dry) == sorted(lipowa.get_column("meter_id"))
    public = client.get("/public/interruptions.geojson").json()
    assert all("meter_id" not in f["properties"] for f in public["features"])
    assert len([f for f in public["features"] if f["properties"]["type"] == "premise"]) == lipowa.height
    page = client.get("/dashboards/interruptions?lang=en", headers=auth)
    assert page.status_code == 200 and "Lipowa since" in page.text and "scatter" in page.text
    fig = json.loads(page.text.split('data-chart="chart-map">', 1)[1].split("</script>", 1)[0])
    assert {t["type"] for t in fig["data"]} == {"scatter"}  # no tile server: a plain lon/lat plane
    assert not {"mapbox", "map", "geo"} & set(fig["layout"])
    assert "No water now in" in client.get("/outages?lang=en").text
    polish = client.get("/dashboards/interruptions", headers=auth).text  # the default locale: pl
    assert "<strong>Teraz bez wody:</strong>" in polish and f"Lipowa od {local_start}" in polish
    pl_fig = json.loads(polish.split('data-chart="chart-map">', 1)[1].split("</script>", 1)[0])
    assert [len(t["x"]) for t in pl_fig["data"] if t["name"] == "bez wody"] == [lipowa.height]
    assert "bez wody: Lipowa" in [text for t in pl_fig["data"] if t["name"] == "streets" for text in t["text"]]
    assert f"Lipowa od {local_start}" in client.get("/outages").text
    customer = lipowa.get_column("customer_ref")[0]
    sig = customer_signature(app_settings, customer)
    cpage = client.get(f"/c/{customer}?sig={sig}&lang=en").text
    banner = cpage.split('id="interruption-status">', 1)[1].split("</div>", 1)[0]
    page_start = cut.start.astimezone(ZoneInfo("Europe/Warsaw")).strftime("%-d %b %Y, %H:%M")
    assert "No water in your street" in banner and f"(Lipowa) since {page_start}" in " ".join(banner.split())
    assert "Brak wody na Twojej ulicy" in client.get(f"/c/{customer}?sig={sig}&lang=pl").text
    other = area.registry.filter(pl.col("street") != "Lipowa").get_column("customer_ref")[0]
    assert "interruption-status" not in client.get(
        f"/c/{other}?sig={customer_signature(app_settings, other)}&lang=en").text

    # restoration closes it, with one more message each
    after = cut.end + 2 * H
    add_readings(clean_db, area.readings.filter((pl.col("time") >= before + H) & (pl.col("time") < after)))
    done = run_interruptions(clean_db, app_settings, after, notify=True, dry_run=False)
    assert done["closed"] == 1 and done["notices"]["sent"] == len(phones) + 1
    second = _sms(http_server)[len(phones):]
    assert sorted(t["to"][0] for t in second) == phones
    assert all(t["text"][0].startswith("Water is back in Lipowa") for t in second)
    row = clean_db.execute("SELECT state, start_at, end_at FROM interruptions WHERE street = 'Lipowa'").fetchone()
    assert row == ("closed", cut.start, cut.end)
    assert "interruption-status" not in client.get(f"/c/{customer}?sig={sig}&lang=en").text
    assert run_interruptions(clean_db, app_settings, after + H, notify=True, dry_run=False)["notices"]["sent"] == 0


def test_planned_works_are_shown_notified_and_label_a_matching_detection(
        clean_db: psycopg.Connection, app_settings: Settings, client: TestClient, http_server) -> None:  # type: ignore[no-untyped-def]
    cfg = AreaConfig(days=14, seed=6, consent_share=0.0)
    cut = default_events(cfg)[0]
    works = AreaEvent("supply", "DMA-02", None, cut.start + 24 * H, cut.start + 27 * H)
    area = build_area(AreaConfig(days=14, seed=6, consent_share=0.0, events=(cut, works)))
    _load(clean_db, area.registry, area.readings_until(cut.start - H))
    auth = {"authorization": f"Bearer {TOKEN}"}
    for body in ({"district": "DMA-01", "streets": ["Lipowa"], "note": "valve exchange"},
                 {"district": "DMA-02", "streets": [], "note": "main flushing"}):
        start = cut.start if body["district"] == "DMA-01" else works.start
        r = client.post("/api/v1/interruptions/planned", headers=auth, json={
            **body, "starts_at": start.isoformat(), "ends_at": (start + 4 * H).isoformat()})
        assert r.status_code == 201 and r.json()["created_by"] == "analyst"
    bad = client.post("/api/v1/interruptions/planned", headers=auth, json={
        "district": "DMA-01", "starts_at": cut.start.isoformat(), "ends_at": cut.start.isoformat()})
    assert bad.status_code == 422
    client.post("/api/v1/sms/inbound?secret=gw-secret", data={"from": "+48700000009", "text": "ADD Polna"})
    # the DMA-02 works begin: shown and told like a detected interruption, with their end and note
    add_readings(clean_db, area.readings.filter((pl.col("time") >= cut.start - H) & (pl.col("time") < works.start)))
    run_interruptions(clean_db, app_settings, works.start + H, notify=True, dry_run=False)
    rows = client.get("/api/v1/interruptions?state=open", headers=auth).json()
    planned = [r for r in rows if r["district"] == "DMA-02"]
    assert [(p["cause"], p["street"]) for p in planned] == [("planned", None)]
    [msg] = [t for t in _sms(http_server) if t["to"] == ["+48700000009"]]
    assert "(planned works)" in msg["text"][0] and "Expected back" in msg["text"][0] and "main flushing" in \
        msg["text"][0]
    # the Lipowa cut happened inside its planned window: detected, and labelled with the works
    lipowa = [r for r in client.get("/api/v1/interruptions", headers=auth).json() if r["street"] == "Lipowa"]
    assert len(lipowa) == 1 and lipowa[0]["planned_id"] is not None and lipowa[0]["cause"] == "standstill"
