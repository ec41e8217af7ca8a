"""The customer page through the ASGI app: monthly m3 equal to `billing export`, error pages in the customer's
language, self-read validation, CSV downloads, the translation catalogue and Polish formats, compressed statics."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date

import psycopg
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from customer_seed import Customers, exported, link
from fastapi.testclient import TestClient

from api.app import create_app
from api.pages import i18n
from api.pages.auth import customer_signature
from api.routes.customer import parse_index
from pipelines.billing import run_billing

REPO = i18n.LOCALE_DIR.parents[1]


@pytest.fixture(scope="module")
def client(customers: Customers) -> Iterator[TestClient]:
    with TestClient(create_app(customers.settings, customers.dsn), follow_redirects=False) as c:
        yield c


def page_month(html: str, month: str) -> float | None:
    found = re.search(rf'<tr data-month="{month}"(?: data-m3="([0-9.]+)")?>', html)
    assert found, f"no row for {month}"
    return float(found.group(1)) if found.group(1) else None


@pytest.mark.parametrize(("customer", "meters"), [("K-ORD", ["K1"]), ("K-EXC", ["E1", "E2"]), ("K-NEW", ["N1"]),
                                                  ("K-BRS", ["B1"])])
def test_monthly_figure_is_the_billing_export(client: TestClient, customers: Customers, customer: str,
                                              meters: list[str]) -> None:
    export = exported(customers.settings, date(2026, 2, 1), date(2026, 3, 1))
    html = client.get(link(customers.settings, customer)).text
    expected = round(sum(export[m] for m in meters), 3)
    assert page_month(html, "2026-02") == pytest.approx(expected, abs=5e-4)
    assert expected > 4.0  # a real month of use, not an empty bar


def test_a_month_not_billed_yet_is_computed_by_billing_itself(client: TestClient, customers: Customers) -> None:
    html = client.get(link(customers.settings, "K-BRS")).text
    shown = page_month(html, "2025-12")
    assert exported(customers.settings, date(2025, 12, 1), date(2026, 1, 1)) == {}
    run_billing(customers.settings, date(2025, 12, 1), date(2026, 1, 1))
    assert shown == pytest.approx(round(exported(customers.settings, date(2025, 12, 1), date(2026, 1, 1))["B1"], 3),
                                  abs=5e-4)


def test_first_month_exchange_and_burst_pages(client: TestClient, customers: Customers) -> None:
    new = client.get(link(customers.settings, "K-NEW")).text
    assert page_month(new, "2026-01") is None and 'id="missing-days">0<' in new
    # average per day over the complete days in service: 10-28 Feb, from the installation index 5.0
    with psycopg.connect(customers.dsn) as conn:
        last = conn.execute("SELECT total_m3 FROM readings WHERE meter_id = 'N1'"
                            " AND time < '2026-03-01 00:00+01' ORDER BY time DESC LIMIT 1").fetchone()
    assert last is not None
    average = i18n.for_locale("pl").num((last[0] - 5.0) * 1000 / 19)
    assert f'id="avg-now">{average} <small>' in new
    assert re.search(r'id="avg-last-year"><span class="nodata">brak danych', new)
    exc = client.get(link(customers.settings, "K-EXC")).text
    assert 'id="missing-days">0<' in exc
    assert "W miesiącu wymiany wodomierza zużycie starego i nowego jest zsumowane." in exc
    february = re.search(r'<tr data-month="2026-02".*?</tr>', exc, re.S)
    assert february and '<span class="exchange">wymiana wodomierza</span>' in february.group(0)
    assert 'data-status="removed"' in exc and "Wodomierz nr E1" in exc and "Wodomierz nr E2" in exc
    burst = client.get(link(customers.settings, "K-BRS")).text
    assert "Możliwy wyciek." in burst and "Nie wykryto wycieku" not in burst
    assert '<tr data-kind="burst" data-state="open">' in burst
    assert '<tr data-kind="continuous_flow" data-state="closed">' in burst
    # meter facts: tariff group, verification expiring within 90 days (15.04.2026 as of 01.03.2026)
    ordinary = client.get(link(customers.settings, "K-ORD")).text
    assert "G1" in ordinary and "15.04.2026" in ordinary and "wygasa za 45 dni" in ordinary
    assert '<html lang="pl">' in ordinary and '<html lang="en">' in client.get(
        link(customers.settings, "K-ORD", lang="en")).text


def test_a_meter_read_only_lately_does_not_count_its_whole_life_in_one_day(client: TestClient,
                                                                          customers: Customers) -> None:
    html = client.get(link(customers.settings, "K-MIG")).text
    days = dict(re.findall(r'<tr><th scope="row">(\d\d\.\d\d\.\d{4})</th><td class="num">([^<]+)</td>', html))
    assert days["19.02.2026"] == "brak odczytu"  # installed long ago, but no reading that day
    first = float(days["20.02.2026"].replace("\u00a0", "").replace(",", "."))
    assert 0 < first < 400  # from 10:00 on: the day's own use, not 350 m3 since the installation


def test_read_types_in_the_garden_meter_table(client: TestClient, customers: Customers) -> None:
    html = client.get(link(customers.settings, "K-ORD", "/meters/K1G")).text
    types = re.findall(r'<tr data-type="([a-z_]+)">', html)
    assert {"remote", "self_read", "imported", "estimated"} <= set(types)
    assert types[0] == "estimated"  # February ended on an estimate (01.03.2026 00:00), the newest row
    assert ">samoodczyt<" in html and ">szacowany<" in html and ">zaimportowany<" in html
    assert "<dt>Za wodomierzem głównym</dt><dd>K1</dd>" in html and "podlicznik ogrodowy" in html


def test_error_pages_in_the_customers_language(client: TestClient, customers: Customers) -> None:
    s = customers.settings
    client.cookies.clear()  # no customer session left by the other tests' links
    bad = client.get("/c/K-ORD?sig=0000")
    assert bad.status_code == 403 and bad.headers["content-type"].startswith("text/html")
    assert "Ten link jest nieprawidłowy" in bad.text and '<html lang="pl">' in bad.text
    bad_en = client.get("/c/K-ORD?lang=en")
    assert bad_en.status_code == 403 and "This link is not valid" in bad_en.text
    unknown = client.get(f"/c/NOBODY?sig={customer_signature(s, 'NOBODY')}")
    assert unknown.status_code == 404 and "Nie znaleziono klienta" in unknown.text and "NOBODY" in unknown.text
    other = client.get(link(s, "K-ORD", "/meters/B1"))
    assert other.status_code == 403 and "Wodomierz B1 nie należy do tego konta klienta." in other.text
    csv_other = client.get(link(s, "K-ORD", "/meters/B1/readings.csv"))
    assert csv_other.status_code == 403 and csv_other.headers["content-type"].startswith("text/html")
    bad_now = client.get(link(s, "K-ORD") + "&now=yesterday")
    assert bad_now.status_code == 422 and "<html" in bad_now.text
    bad_page = client.get(link(s, "K-ORD", page="x"))
    assert bad_page.status_code == 200 and "Strona 1 z" in bad_page.text
    assert "Strona 2 z" in client.get(link(s, "K-ORD", page="2")).text
    missing = client.get(link(s, "K-ORD", "/meters/K1/nothing.csv"))
    assert missing.status_code == 404 and "<html" in missing.text


def test_self_read_validation_messages(client: TestClient, customers: Customers) -> None:
    s = customers.settings
    form = link(s, "K-NEW", "/meters/N1/self-read", now="2026-03-01T12:30")
    below = client.post(form, data={"time": "2026-03-01T12:30", "index": "10,5"})
    assert below.status_code == 422
    assert "Stan 10,500 m³ jest mniejszy od ostatniego odczytu: 10,926 m³ z 01.03.2026 12:00." in below.text
    future = client.post(form + "&lang=en", data={"time": "2099-01-01T10:00", "index": "11"})
    assert future.status_code == 422 and "is in the future" in future.text
    junk = client.post(form, data={"time": "2026-03-01T12:30", "index": "abc"})
    assert junk.status_code == 422 and "„abc” nie jest liczbą" in junk.text
    foreign = client.post(link(s, "K-NEW", "/meters/B1/self-read"), data={"time": "2026-03-01T12:30", "index": "999"})
    assert foreign.status_code == 403
    ok = client.post(form, data={"time": "2026-03-01T12:30", "index": "10,931"})
    assert ok.status_code == 303 and ok.headers["location"].startswith("/c/K-NEW/meters/N1?")
    with psycopg.connect(customers.dsn) as conn:
        row = conn.execute("SELECT total_m3, source, fields->>'note' FROM readings WHERE meter_id = 'N1'"
                           " ORDER BY time DESC LIMIT 1").fetchone()
    assert row == (10.931, "manual", "self-read by customer K-NEW (customer page)")
    after = client.get(ok.headers["location"]).text
    assert "Dziękujemy: odczyt został zapisany." in after
    assert re.search(r'<tr data-type="self_read"><td>01.03.2026 12:30</td><td>N1</td><td class="num">10,931</td>',
                     after)


def test_csv_downloads(client: TestClient, customers: Customers) -> None:
    s = customers.settings
    monthly = client.get(link(s, "K-EXC", "/meters/E2/monthly.csv"))
    assert monthly.status_code == 200 and monthly.headers["content-type"].startswith("text/csv")
    rows = {r["month"]: r for r in csv.DictReader(io.StringIO(monthly.text), delimiter=";")}
    export = exported(s, date(2026, 2, 1), date(2026, 3, 1))
    assert float(rows["2026-02"]["consumption_m3"].replace(",", ".")) == pytest.approx(export["E1"] + export["E2"])
    readings = client.get(link(s, "K-EXC", "/meters/E2/readings.csv", lang="en"))
    lines = list(csv.DictReader(io.StringIO(readings.text)))
    assert {r["meter_id"] for r in lines} == {"E1", "E2"}
    assert lines[0]["time"] == "2026-03-01T12:00:00+01:00" and lines[0]["read_type"] == "remote"


@pytest.mark.parametrize(("text", "value"), [("123,456", 123.456), ("1 234,5", 1234.5), ("1\u00a0234,5", 1234.5),
                                             (" 12.5 ", 12.5), ("abc", None), ("", None)])
def test_parse_index_accepts_a_decimal_comma(text: str, value: float | None) -> None:
    assert parse_index(text) == value


@pytest.mark.parametrize(("lang", "value", "digits", "text"), [
    ("pl", 1471.4, 0, "1\u00a0471"), ("pl", 2695.413, 3, "2\u00a0695,413"), ("pl", 12.5, 1, "12,5"),
    ("pl", 1234567.891, 3, "1\u00a0234\u00a0567,891"), ("en", 1471.4, 0, "1,471"), ("en", 2695.413, 3, "2,695.413"),
])
def test_number_formats(lang: str, value: float, digits: int, text: str) -> None:
    assert i18n.for_locale(lang).num(value, digits) == text


def test_date_formats_in_warsaw_time() -> None:
    from datetime import UTC, datetime

    pl_, en = i18n.for_locale("pl"), i18n.for_locale("en")
    winter = datetime(2026, 2, 28, 23, 30, tzinfo=UTC)  # 00:30 on 1 March in Warsaw
    assert pl_.when(winter) == "01.03.2026 00:30" and pl_.day(winter) == "01.03.2026"
    assert en.when(winter) == "1 Mar 2026, 00:30" and pl_.month(date(2026, 2, 1)) == "Luty 2026"


def test_every_page_message_has_a_polish_translation() -> None:
    """Extract the messages of the code and templates now (with babel.cfg's files) and look each up in pl."""
    with (REPO / "babel.cfg").open() as cfg:
        method_map, _options = parse_mapping_cfg(cfg)
    keywords = {"_": None, "gettext": None, "N_": None, "ngettext": (1, 2)}
    ids = {msg[2] if isinstance(msg[2], str) else tuple(msg[2])
           for msg in extract_from_dir(str(REPO), method_map, keywords=keywords)}
    assert {"Stuck and backflow", "alert %(alert)s is already closed", ("%(num)s meter", "%(num)s meters")} <= ids
    assert len(ids) > 100
    catalogue = i18n.catalogue("pl")
    untranslated = sorted(str(m) for m in ids if (catalogue.gettext(m) == m if isinstance(m, str)
                                                  else catalogue.ngettext(m[0], m[1], 5) == m[1]))
    assert not untranslated, f"add these to api/locales/pl/LC_MESSAGES/messages.po: {untranslated}"


def test_static_files_are_gzipped_and_cached(client: TestClient, customers: Customers) -> None:
    raw = client.get("/static/plotly.min.js", headers={"accept-encoding": "identity"})
    packed = client.get("/static/plotly.min.js", headers={"accept-encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip" and "max-age=604800" in packed.headers["cache-control"]
    assert packed.headers["vary"] == "Accept-Encoding"
    assert int(packed.headers["content-length"]) < int(raw.headers["content-length"]) / 3
    again = client.get("/static/plotly.min.js", headers={"if-none-match": packed.headers["etag"]})
    assert again.status_code == 304
    page = client.get(link(customers.settings, "K-ORD"), headers={"accept-encoding": "gzip"})
    assert page.headers["content-encoding"] == "gzip" and int(page.headers["content-length"]) < len(page.content) / 3
    css = client.get("/static/dashboards.css", headers={"accept-encoding": "gzip, br"})
    assert css.headers["content-encoding"] == "gzip" and b"--ink" in css.content
    assert packed.content == raw.content  # the client inflated it


def test_fleet_page_in_polish_and_english(client: TestClient) -> None:
    """The fleet page follows the locale (pl by default, `?lang=en`): Polish labels, decimal comma, dd.mm.yyyy."""
    from dash_seed import TOKEN

    auth = {"authorization": f"Bearer {TOKEN}"}
    fleet = client.get("/dashboards/fleet?now=2026-03-01T12:00", headers=auth)
    assert fleet.status_code == 200 and '<html lang="pl">' in fleet.text
    assert ">Przegląd sieci wodomierzy</h1>" in fleet.text and "<th>Strefa</th>" in fleet.text
    assert "<td>Awaria (pęknięcie)</td>" in fleet.text and ">Bilans wodny strefy</a>" in fleet.text
    assert 'Odczytane w ostatnich 24 h</div><div class="value">100,0 <small>%</small>' in fleet.text  # decimal comma
    assert "stan na 01.03.2026 12:00 (Europe/Warsaw)" in fleet.text and ">20.02.2026 03:00</td>" in fleet.text
    assert "<h2>Zdarzenia <small" in fleet.text and "12,0 h temu" in fleet.text and "<td>15.04.2026</td>" in fleet.text
    english = client.get("/dashboards/fleet?now=2026-03-01T12:00&lang=en", headers=auth)
    assert '<html lang="en">' in english.text and ">Fleet overview</h1>" in english.text
    assert 'Heard in the last 24 h</div><div class="value">100.0 <small>%</small>' in english.text
    assert "as of 2026-03-01 12:00" in english.text and "<td>Burst</td>" in english.text
    assert "<h2>Incidents <small" in english.text and "12.0 h ago" in english.text
    assert "<td>2026-04-15</td>" in english.text
    login = client.get("/login")
    assert '<html lang="pl">' in login.text and "<h1>Zaloguj się</h1>" in login.text
