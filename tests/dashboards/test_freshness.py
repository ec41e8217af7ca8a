"""Fresh pages: serve's periodic refresh brings readings committed since the last refresh onto the pages,
and every analyst page says what its data is as of."""

from __future__ import annotations

from datetime import timedelta

import psycopg
from console_seed import console_seeded
from dash_seed import NOW, NOW_PARAM, TOKEN, Seeded, web_settings_for
from fastapi.testclient import TestClient

from api.app import create_app
from storage import chart_queries as q
from storage import worklists
from storage.refresh import refresh_recent

__all__ = ["console_seeded"]


def test_a_new_radio_reading_reaches_the_pages_after_the_refresh(console_seeded: Seeded) -> None:
    heard_at = NOW - timedelta(minutes=30)
    with psycopg.connect(console_seeded.dsn) as conn:
        before = q.data_as_of(conn, NOW)
        assert [r["meter_id"] for r in worklists.fetch(conn, "no-reads", worklists.Query(days=1), NOW,
                                                         "Europe/Warsaw").rows] == ["M3", "M4", "M5"]
        conn.execute("INSERT INTO readings (meter_id, time, total_m3, gateway_id, received_at, source)"
                     " VALUES ('M3', %s, 999.0, 'GW7', %s, 'wmbus')", (heard_at, NOW))
        conn.commit()
        # not on the pages until the dashboard tables are refreshed ...
        assert q.meter_info(conn, "M3")["last_heard"] == NOW - timedelta(days=2)  # type: ignore[index]
        start, end = refresh_recent(conn, now=NOW)
        assert start <= heard_at < end
        assert q.meter_info(conn, "M3")["last_heard"] == heard_at  # type: ignore[index]
        after = q.data_as_of(conn, NOW)
        assert after["newest_reading"] == NOW and after["refreshed_at"] > before["refreshed_at"]
        assert [r["meter_id"] for r in worklists.fetch(conn, "no-reads", worklists.Query(days=1), NOW,
                                                         "Europe/Warsaw").rows] == ["M4", "M5"]
        assert conn.execute("SELECT gateway_id FROM meter_last_heard WHERE meter_id = 'M3'").fetchone() == ("GW7",)
        hourly = q.meter_hourly(conn, "M3", NOW - timedelta(hours=1), NOW + timedelta(hours=1))
        assert hourly.filter(~hourly["missing"])["index_m3"].to_list() == [999.0]
    settings = web_settings_for(console_seeded.dsn)
    with TestClient(create_app(settings, console_seeded.dsn)) as client:
        auth = {"authorization": f"Bearer {TOKEN}"}
        for path in ("/dashboards/fleet", "/dashboards/meters/M3", "/dashboards/lists/incidents",
                     "/dashboards/balance", "/dashboards/audit", "/dashboards/search?q=c-"):
            page = client.get(path + ("&" if "?" in path else "?") + f"now={NOW_PARAM}", headers=auth)
            assert page.status_code == 200 and "data as of 2026-03-01 12:00 · refreshed" in page.text, path


def test_serves_refresh_loop_picks_up_a_reading_that_just_arrived(console_seeded: Seeded) -> None:
    import threading
    import time
    from datetime import UTC, datetime

    from cli.commands.serve import _refresh_loop

    heard_at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    with psycopg.connect(console_seeded.dsn) as conn:
        conn.execute("INSERT INTO readings (meter_id, time, total_m3, gateway_id, received_at, source)"
                     " VALUES ('M5', %s, 3.5, 'GW9', %s, 'wmbus')", (heard_at, heard_at))
        conn.commit()
        stop = threading.Event()
        loop = threading.Thread(target=_refresh_loop, args=(console_seeded.dsn, 0.2, stop), daemon=True)
        loop.start()
        deadline = time.monotonic() + 30
        heard = None
        while time.monotonic() < deadline and heard is None:
            heard = conn.execute("SELECT last_heard, gateway_id FROM meter_last_heard WHERE meter_id = 'M5'"
                                 ).fetchone()
            conn.rollback()
            time.sleep(0.1)
        stop.set()
        loop.join(timeout=30)
    assert heard == (heard_at, "GW9") and not loop.is_alive()
