"""Pages and access rules through the ASGI app (the browser test renders them for real)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dash_seed import NOW_PARAM, TOKEN, Seeded, shows
from fastapi.testclient import TestClient

from api.app import create_app
from api.pages.auth import customer_signature
from meterflow.config import Settings

HTML = {"accept": "text/html"}


@pytest.fixture
def client(seeded: Seeded, web_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings, seeded.dsn), follow_redirects=False) as c:
        yield c


def test_analyst_pages_need_a_token(client: TestClient) -> None:
    assert client.get("/dashboards/fleet").status_code == 401
    assert client.get("/dashboards/fleet", headers={"authorization": "Bearer wrong"}).status_code == 403
    r = client.get("/dashboards/fleet", headers=HTML)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_login_form_sets_a_cookie(client: TestClient) -> None:
    r = client.post("/login", data={"token": "nope", "next": "/dashboards/fleet"})
    assert r.status_code == 303 and "error" in r.headers["location"]
    r = client.post("/login", data={"token": TOKEN, "next": f"/dashboards/fleet?now={NOW_PARAM}"})
    assert r.status_code == 303 and r.headers["location"] == f"/dashboards/fleet?now={NOW_PARAM}"
    assert client.get(r.headers["location"]).status_code == 200  # cookie sent from now on


def test_token_in_the_query_moves_into_a_cookie(client: TestClient) -> None:
    r = client.get(f"/dashboards/meters/M1?token={TOKEN}&now={NOW_PARAM}")
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboards/meters/M1?now=2026-03-01T12%3A00"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("meterflow_session=") and TOKEN not in cookie  # a session, never the token
    page = client.get(r.headers["location"])
    assert page.status_code == 200 and "Meter M1" in page.text


def test_bearer_pages_render(client: TestClient) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    fleet = client.get(f"/dashboards/fleet?now={NOW_PARAM}", headers=auth)
    assert fleet.status_code == 200
    assert "Fleet overview" in fleet.text and "Continuous flow (leak)" in fleet.text
    assert client.get("/dashboards/meters/NOPE", headers=auth).status_code == 404
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000


def test_customer_link_shows_only_that_customer(client: TestClient, web_settings: Settings) -> None:
    sig_a = customer_signature(web_settings, "C-A")
    page = client.get(f"/c/C-A?sig={sig_a}&now={NOW_PARAM}&lang=en")
    assert page.status_code == 200
    assert shows(page.text, "M1") and shows(page.text, "M2") and not shows(page.text, "M3")
    assert "Possible leak" in page.text
    assert client.get(f"/c/C-A/meters/M1?sig={sig_a}&now={NOW_PARAM}").status_code == 200
    # another customer's meter through C-A's link, another customer with C-A's signature, no signature
    assert client.get(f"/c/C-A/meters/M3?sig={sig_a}").status_code == 403
    assert client.get(f"/c/C-B?sig={sig_a}").status_code == 403
    assert client.get(f"/c/C-B/meters/M3?sig={sig_a}").status_code == 403
    assert client.get("/c/C-A").status_code == 200  # the link left a signed customer session
    client.cookies.clear()
    assert client.get("/c/C-A").status_code == 403
    sig_b = customer_signature(web_settings, "C-B")
    page_b = client.get(f"/c/C-B?sig={sig_b}&now={NOW_PARAM}&lang=en")
    assert page_b.status_code == 200 and "No leak detected" in page_b.text and not shows(page_b.text, "M1")
