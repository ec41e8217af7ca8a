"""The analyst pages in Polish, the utility's default locale: the meter, list, alert, audit, balance, search and
interruption pages (with their charts and the shared incident table) say everything in Polish, with decimal
commas and dd.mm.yyyy dates in Warsaw time; `?lang=` switches either way; no English word is left over."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import psycopg
import pytest
from console_seed import WEST_INLET_L_H, console_seeded
from dash_seed import NOW, NOW_PARAM, TOKEN, Seeded, web_settings_for
from fastapi.testclient import TestClient

from api.app import create_app
from api.pages import i18n
from storage import worklists

__all__ = ["console_seeded"]
AUTH = {"authorization": f"Bearer {TOKEN}"}
PL = i18n.for_locale("pl")
NBSP = "\u00a0"


@pytest.fixture(scope="module")
def client(console_seeded: Seeded) -> Iterator[TestClient]:
    """The app as a Polish utility runs it: `api.locale` pl."""
    with TestClient(create_app(web_settings_for(console_seeded.dsn, locale="pl"), console_seeded.dsn),
                    follow_redirects=False) as c:
        yield c


@pytest.fixture
def conn(console_seeded: Seeded) -> Iterator[psycopg.Connection]:
    with psycopg.connect(console_seeded.dsn) as c:
        yield c


def get(client: TestClient, path: str) -> str:
    sep = "&" if "?" in path else "?"
    r = client.get(f"{path}{sep}now={NOW_PARAM}", headers=AUTH)
    assert r.status_code == 200, r.text
    html: str = r.text
    assert '<html lang="pl">' in html or "lang=en" in path
    return html


def chart(html: str, name: str) -> dict[str, Any]:
    found = re.search(rf'data-chart="chart-{name}">(.*?)</script>', html, re.S)
    assert found, f"no chart {name}"
    figure: dict[str, Any] = json.loads(found.group(1).replace("<\\/", "</"))
    return figure


def alert_id(conn: psycopg.Connection, meter: str, kind: str) -> int:
    row = conn.execute("SELECT id FROM alerts WHERE meter_id = %s AND kind = %s", (meter, kind)).fetchone()
    assert row is not None
    return int(row[0])


# --------------------------------------------------------------------------------------------- pages


def test_meter_page_in_polish(client: TestClient, conn: psycopg.Connection) -> None:
    html = get(client, "/dashboards/meters/M1")
    assert "<title>Wodomierz M1 · meterflow</title>" in html and "<h1>Wodomierz M1</h1>" in html
    assert "· strefa North · klient C-A · punkt poboru P-M1" in html
    index = conn.execute("SELECT max(total_m3) FROM readings WHERE meter_id = 'M1' AND time <= %s", (NOW,)).fetchone()
    assert index is not None and index[0] > 100
    assert f'Ostatni stan</div><div class="value">{PL.num(index[0], 3)} <small>m³</small>' in html
    assert re.search(r"Zużycie, 90 dni</div><div class=\"value\">\d+,\d\d <small>m³</small>", html)
    assert 'Koniec legalizacji</div><div class="value" style="font-size:18px">01.01.2031</div>' in html
    # the closed tamper alarm of dash_seed (40 to 38 days before NOW) and the billing result of January
    assert ("<td>Alarm wodomierza: ingerencja</td><td><span class=\"pill warning\">ostrzeżenie</span></td>"
            "<td>zakończone</td><td>20.01.2026 12:00</td><td>22.01.2026 12:00</td>") in html
    assert ("<td>01.01.2026 – 01.02.2026</td><td>szacowany</td><td><code>interpolation</code></td>"
            "<td><code>gap_filled</code></td><td class=\"num\">8,10</td>") in html
    assert "<h2>Okresy rozliczeniowe (VEE)</h2>" in html and "<h2>Alarmy i zgłoszenia</h2>" in html
    figure = chart(html, "meter")
    assert figure["layout"]["title"]["text"] == "Wodomierz M1: stan, zużycie dobowe i zdarzenia"
    assert figure["layout"]["separators"] == ", " and figure["layout"]["xaxis"]["tickformat"] == "%d.%m"
    names = {t.get("name") for t in figure["data"]}
    assert {"stan", "zużycie", "ten sam okres rok wcześniej", "alarm – Alarm wodomierza: ingerencja",
            "VEE: szacowany"} <= names
    assert [a["text"] for a in figure["layout"]["annotations"]] == [
        "Stan (m³)", "Zużycie dobowe (m³/dobę)", "Alarmy i flagi VEE"]
    hourly = chart(html, "hourly")
    assert hourly["layout"]["title"]["text"] == "Wodomierz M1: zużycie godzinowe (l), luki zacienione"
    assert hourly["data"][0]["hovertemplate"] == "%{x|%d.%m %H:00}: %{y:,.0f} l<extra></extra>"


def test_meter_page_incidents_in_polish(client: TestClient) -> None:
    html = get(client, "/dashboards/meters/M2")
    table = html[html.index('id="incidents-table"'):]
    table = table[:table.index("</table>")]
    # the detector stored no volume for the seeded alert: its rate shows, its volume is a dash
    assert ("<td>Ciągły przepływ (wyciek)</td><td><span class=\"pill critical\">krytyczny</span></td><td>trwa</td>"
            in table) and ">19.02.2026 12:00</td>" in table
    assert '<td class="num">30</td><td class="num">—</td>' in table
    assert "<h2>Zdarzenia <small class=\"muted\">trwa 1 · zamknięte w ostatnich 30 dniach 0" in html


def test_lists_in_polish(client: TestClient, conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO interruptions (kind, cause, district, street, start_at, meters) VALUES"
                 " ('supply', 'standstill', 'South', 'Polna', %s, '{M3,M4}')", (NOW - timedelta(hours=3),))
    conn.commit()
    try:
        html = get(client, "/dashboards/lists/incidents")
    finally:
        conn.execute("DELETE FROM interruptions")
        conn.commit()
    assert "<h1>Otwarte zdarzenia <small class=\"muted\">(2)</small></h1>" in html
    assert "Szac. strata (m³) ↓</a></th>" in html and '<option value="">wszystkie</option>' in html
    assert "Polna (2 wodomierze, wodomierze stoją)" in html and "Przerwa w dostawie wody" in html
    assert "01.03.2026 09:00" in html  # the interruption began 3 hours before NOW (Warsaw time)
    assert f'<td class="num">{PL.num(30 * 24 * 10 / 1000, 2)}\n</td>' in html  # M2: 30 L/h for 10 days
    assert ">Filtruj</button>" in html and ">Eksport CSV</a>" in html and "strona 1 z 1" in html

    no_reads = get(client, "/dashboards/lists/no-reads?days=1")
    assert "<h1>Brak odczytów <small class=\"muted\">(3)</small></h1>" in no_reads
    assert '<label for="f-days">bez odczytu od (dni)</label>' in no_reads
    assert "27.02.2026 12:00" in no_reads and '<span class="muted">nigdy</span>' in no_reads
    verification = get(client, "/dashboards/lists/verification")
    assert "30.03.2026" in verification and "01.05.2026" in verification and "Pozostało dni" in verification
    zero = get(client, "/dashboards/lists/zero-reads")
    assert "<td class=\"num\">55,50\n</td>" in zero and "Dni z odczytem" in zero
    dead = get(client, "/dashboards/lists/dead-letters")
    assert "<code>no_key</code>" in dead and "Odrzucone wiadomości według przyczyny" in dead
    # the nav's list titles too
    assert all(f">{PL.gettext(w.title)}</a>" in dead for w in worklists.LISTS.values())
    empty = get(client, "/dashboards/lists/stuck")
    assert '<td colspan="14" class="muted">lista jest pusta</td>' in empty


def test_audit_search_and_balance_in_polish(client: TestClient) -> None:
    balance = get(client, "/dashboards/balance?days=10")
    assert "<h1>Bilans wodny strefy</h1>" in balance and "za ostatnie 10 dni" in balance
    # West: its inlet's constant 50 L/h over 10 days, none of it billed
    west = PL.num(WEST_INLET_L_H * 24 * 10 / 1000, 1)
    assert (f'<td>West</td><td class="num">10</td><td class="num">{west}</td><td class="num">0,0</td>'
            f'<td class="num">{west}</td><td class="num">100,0</td>'
            f'<td class="num">{PL.num(WEST_INLET_L_H * 24 / 1000, 2)}</td><td class="num">50</td>') in balance
    ranking = chart(balance, "balance-ranking")
    assert ranking["layout"]["title"]["text"] == "Woda niedochodowa według stref (% wody wtłoczonej)"
    assert ranking["data"][0]["text"][0] == "100,0 % · 1,2 m³/dobę"
    district = chart(balance, "balance-0")
    assert district["layout"]["title"]["text"] == "West: woda wtłoczona, zafakturowana i przepływ nocny"
    assert [t["name"] for t in district["data"]] == [
        "zafakturowane (wodomierze klientów)", "niedochodowa", "wtłoczono", "min. przepływ nocny (l/h)"]

    search = get(client, "/dashboards/search?q=polna")
    assert "lub adres: “polna”, 3 wodomierze." in search and "<td>wodomierz główny</td>" in search
    assert "<td>01.02.2026</td>" in search  # M6 removed on 1 February
    nothing = get(client, "/dashboards/search?q=zzz")
    assert "“zzz”, 0 wodomierzy." in nothing and "nie znaleziono wodomierza" in nothing
    assert "wpisz szukany tekst w polu wyszukiwania powyżej" in get(client, "/dashboards/search")

    audit = get(client, "/dashboards/audit")
    assert "<h1>Dziennik zmian: kto co zrobił</h1>" in audit and "(pokazano: 0)" in audit
    assert "brak działań" in audit


def test_interruption_maps_in_polish(client: TestClient) -> None:
    page = get(client, "/dashboards/interruptions")
    assert "<h1>Przerwy w dostawie i alarmy</h1>" in page and "<strong>Brak przerw w dostawie.</strong>" in page
    figure = chart(page, "map")
    assert figure["layout"]["title"]["text"] == "Dostawa wody: ulice z przerwą w dostawie i alarmy wodomierzy"
    assert figure["layout"]["xaxis"]["title"]["text"] == "długość geograficzna"
    public = client.get("/outages").text
    assert '<html lang="pl">' in public and "<h1>Dostawa wody</h1>" in public
    assert chart(public, "map")["layout"]["title"]["text"] == "Dostawa wody: ulice z przerwą w dostawie"


def test_fleet_charts_in_polish(client: TestClient) -> None:
    html = get(client, "/dashboards/fleet")
    coverage = chart(html, "coverage-district")
    assert coverage["layout"]["title"]["text"] == "Pokrycie odczytami według stref"
    assert coverage["layout"]["separators"] == ", "
    freshness = chart(html, "freshness")
    assert freshness["data"][0]["x"] == ["< 1 h", "1-6 h", "6-24 h", "1-7 dni", "> 7 dni", "nigdy"]
    kinds = chart(html, "alerts-kind")
    # the open continuous flow on M2 and the silent M3: one of each
    assert sorted(zip(kinds["data"][0]["x"], kinds["data"][0]["text"], strict=True)) == [
        ("Ciągły przepływ (wyciek)", "otwarte: 1"), ("Milczący wodomierz (brak odczytów)", "otwarte: 1")]
    assert chart(html, "night-flow")["layout"]["title"]["text"] == "Przepływ nocny w strefach 02:00-04:00 (l/h)"


def test_lang_switches_either_way(client: TestClient, console_seeded: Seeded) -> None:
    english = get(client, "/dashboards/meters/M1?lang=en")
    assert '<html lang="en">' in english and "<h1>Meter M1</h1>" in english and "<td>2026-01-20 12:00</td>" in english
    assert "8.10</td>" in english and "<td>estimated</td>" in english
    en_app = create_app(web_settings_for(console_seeded.dsn, locale="en"), console_seeded.dsn)
    with TestClient(en_app) as c:
        asked = c.get(f"/dashboards/lists/verification?lang=pl&now={NOW_PARAM}", headers=AUTH).text
        assert '<html lang="pl">' in asked and "Kończąca się legalizacja" in asked and "30.03.2026" in asked
        assert '<input type="hidden" name="lang" value="pl">' in asked  # the filter form keeps the language
        plain = c.get(f"/dashboards/lists/verification?now={NOW_PARAM}", headers=AUTH).text
        assert '<html lang="en">' in plain and "Verification expiring" in plain and 'name="lang"' not in plain


def test_alert_workflow_in_polish(client: TestClient, conn: psycopg.Connection) -> None:
    """The alert page's forms and their refusals in Polish; runs last in this module (it closes M2's alert)."""
    aid = alert_id(conn, "M2", "continuous_flow")
    page = get(client, f"/dashboards/alerts/{aid}")
    assert f"<h1>Alarm nr {aid}: Ciągły przepływ (wyciek)" in page and ">trwa</span></h1>" in page
    assert "<dd>19.02.2026 12:00</dd>" in page and "<dd>30 l/h</dd>" in page
    for button in ("Potwierdź", "Przypisz", "Zamknij", "Komentarz"):
        assert f'<button type="submit">{button}</button>' in page
    assert '<option value="false_alarm">fałszywy alarm</option>' in page
    form = {"now": NOW_PARAM}
    for action, data in (("acknowledge", {}), ("assign", {"assignee": "brygada-7", "note": "wizyta"}),
                         ("comment", {"note": "zawór"}), ("close", {"reason": "repaired"})):
        r = client.post(f"/dashboards/alerts/{aid}/{action}", data={**form, **data}, headers=AUTH)
        assert r.status_code == 303 and "error" not in r.headers["location"], r.headers["location"]
    refused = client.post(f"/dashboards/alerts/{aid}/assign", data={**form, "assignee": "x"}, headers=AUTH)
    closed = client.get(refused.headers["location"], headers=AUTH).text
    assert f'<p class="error" id="workflow-error">alarm {aid} jest zamknięty; najpierw otwórz go ponownie</p>' in closed
    assert ">zakończone</span></h1>" in closed and "naprawiono (analyst)" in closed
    for what in ("potwierdzono", "przypisano do brygada-7", "skomentowano", "zakończone: naprawiono"):
        assert f"<td>{what}</td>" in closed
    assert '<button type="submit">Otwórz ponownie</button>' in closed
    audit = get(client, "/dashboards/audit")
    assert "(pokazano: 4)" in audit and "<td>przypisano do brygada-7</td>" in audit
    # a form sent from a page asked in English answers in English
    r = client.post(f"/dashboards/alerts/{aid}/close", data={**form, "reason": "repaired", "lang": "en"},
                    headers=AUTH)
    assert "lang=en" in r.headers["location"]
    again = client.get(r.headers["location"], headers=AUTH).text
    assert f'id="workflow-error">alert {aid} is already closed</p>' in again and '<html lang="en">' in again


# --------------------------------------------------------------------------------------------- leftovers

# English words of the pages' own texts (not data): none may be seen on a Polish page or in its charts. Not
# words that are Polish too ("to", "same", "data", "min").
ENGLISH = {
    "Meter", "meter", "meters", "Alert", "alert", "alerts", "District", "district", "Customer", "customer", "Since",
    "since", "Severity", "State", "none", "never", "open", "closed", "Filter", "Search", "Close", "Assign",
    "Acknowledge", "Comment", "Reopen", "days", "page", "next", "previous", "Who", "When", "What", "Note", "History",
    "Period", "Quality", "Method", "Flags", "Street", "Gateway", "Address", "Role", "Removed", "Input", "input",
    "Billed", "billed", "Non", "revenue", "night", "flow", "water", "Water", "leak", "Leak", "burst", "Burst",
    "index", "consumption", "by", "of", "the", "and", "in", "as", "no", "not", "yet", "nobody", "all", "Export",
    "Last", "Days", "Rate", "Kind", "critical", "warning", "resolved", "repaired", "assigned", "acknowledged",
    "supply", "Supply", "Fleet", "Audit", "Sign", "out", "Skip", "content", "refreshed", "ago", "Dead", "letters",
    "Incidents", "Open", "Verification", "Stuck", "reads", "hourly", "daily", "year", "per", "hour",
    "interrupted", "streets", "supplied", "latitude", "longitude", "detector", "opened", "Acknowledged", "Grey",
    "bands", "Workflow", "Billing", "Alarms", "matches", "type", "list", "nothing", "actions", "shown", "inlet",
    "estimated", "actual", "main",
}


class Visible(HTMLParser):
    """The words a reader sees: text, placeholders and labels; not scripts, styles, <code> or lang="en" data."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: list[str] = []
        self.words: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        marks = dict(attrs)
        if tag in ("script", "style", "code") or marks.get("lang") == "en":
            self.hidden.append(tag)
        elif not self.hidden:
            self.words += " ".join(v or "" for k, v in attrs if k in ("placeholder", "aria-label", "title")).split()

    def handle_endtag(self, tag: str) -> None:
        if self.hidden and self.hidden[-1] == tag:
            self.hidden.pop()

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.words += data.split()


def chart_words(html: str) -> list[str]:
    """The words of every chart: titles, axis titles, annotations, trace names and hover texts."""
    words: list[str] = []
    for found in re.finditer(r'data-chart="chart-[^"]+">(.*?)</script>', html, re.S):
        figure = json.loads(found.group(1).replace("<\\/", "</"))
        layout = figure["layout"]
        texts = [layout.get("title", {}).get("text", "")]
        texts += [v.get("title", {}).get("text", "") if isinstance(v.get("title"), dict) else v.get("title") or ""
                  for k, v in layout.items() if k.startswith(("xaxis", "yaxis"))]
        texts += [a["text"] for a in layout.get("annotations", [])]
        for trace in figure["data"]:
            texts += [trace.get("name") or "", re.sub(r"%\{[^}]*\}|<[^>]+>", " ", trace.get("hovertemplate") or "")]
            texts += [t for t in trace.get("text") or [] if isinstance(t, str)]
        words += " ".join(texts).split()
    return words


def leftovers(html: str) -> set[str]:
    reader = Visible()
    reader.feed(html)
    words = {w.strip(".,:;()“”#·–—→←↓↑+%") for w in reader.words + chart_words(html)}
    return words & ENGLISH


@pytest.mark.parametrize("path", [
    "/dashboards/meters/M1", "/dashboards/meters/M2", "/dashboards/lists/incidents", "/dashboards/lists/no-reads",
    "/dashboards/lists/zero-reads", "/dashboards/lists/stuck", "/dashboards/lists/verification",
    "/dashboards/lists/dead-letters", "/dashboards/alerts/1", "/dashboards/alerts/3", "/dashboards/audit",
    "/dashboards/balance?days=10", "/dashboards/search?q=polna", "/dashboards/search?q=zzz",
    "/dashboards/interruptions", "/outages", "/dashboards/fleet",
])
def test_no_english_left_on_polish_pages(client: TestClient, path: str) -> None:
    html = get(client, path)
    assert leftovers(html) == set()


def test_the_leftover_check_sees_english() -> None:
    """The check itself: it finds English in text, placeholders and charts, and skips data marked as such."""
    page = ('<p>Wodomierz M1 since 01.03.2026</p><input placeholder="all meters"><code>no_key</code>'
            '<span lang="en">flow never stops</span><script type="application/json" data-chart="chart-x">'
            '{"data": [{"name": "consumption", "hovertemplate": "%{x}: %{y} m³<extra></extra>"}],'
            ' "layout": {"title": {"text": "Zużycie"}}}</script>')
    assert leftovers(page) == {"since", "all", "meters", "consumption"}
