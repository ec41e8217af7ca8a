"""Customer links: forged, expired, another customer's or another tenant's, `?now=`: each refused."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
import time
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from sec_seed import BOOTSTRAP, bearer

from api.app import create_app
from api.pages.auth import customer_link, customer_signature
from meterflow.config import Settings
from meterflow.secrets import SecretError, link_secret


def test_no_guessable_link_secret(sec_settings: Settings, seeded_db: psycopg.Connection) -> None:
    secret = link_secret(sec_settings)  # not configured: generated and kept
    path = Path(sec_settings.data_dir) / "link-secret"
    assert len(secret) >= 32 and path.read_bytes().strip() == secret
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert link_secret(sec_settings) == secret  # kept, not regenerated
    for weak in ("change-me", "secret", "short"):
        s = sec_settings.model_copy(update={"api": sec_settings.api.model_copy(
            update={"customer_link_secret": weak})})
        s.api.customer_link_secret = __import__("pydantic").SecretStr(weak)
        with pytest.raises(SecretError):
            create_app(s, sec_settings.database_dsn() or "")


def test_forged_and_foreign_links_are_refused(client: TestClient, sec_settings: Settings) -> None:
    # the old scheme: HMAC("change-me", "customer:C-A")
    forged = hmac.new(b"change-me", b"customer:C-A", hashlib.sha256).hexdigest()[:32]
    assert client.get(f"/c/C-A?sig={forged}").status_code == 403
    other = URLSafeTimedSerializer(b"some-other-secret-0123456789", salt="meterflow.customer-link").dumps("C-A")
    assert client.get(f"/c/C-A?sig={other}").status_code == 403
    sig_a = customer_signature(sec_settings, "C-A")
    assert client.get(f"/c/C-NEW?sig={sig_a}").status_code == 403
    assert client.get(f"/c/C-A/meters/M2?sig={sig_a}").status_code == 403
    url = customer_link(sec_settings, "C-A", "https://water.example")
    assert url.startswith("https://water.example/c/C-A?sig=")
    r = client.get(url.replace("https://water.example", ""))
    assert r.status_code == 200 and "M1" in r.text and not re.search(r"\bM2\b", r.text)
    assert client.get(f"/c/C-A/meters/M1?sig={sig_a}").status_code == 200
    # the customer-session cookie is bound to C-A too
    assert client.get("/c/C-NEW").status_code == 403
    assert client.get("/c/C-A").status_code == 200


def test_links_expire(client: TestClient, sec_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    days = sec_settings.api.customer_link_days
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - (days + 1) * 86400)
    old = customer_signature(sec_settings, "C-A")
    monkeypatch.setattr(time, "time", real)
    assert client.get(f"/c/C-A?sig={old}").status_code == 403
    assert client.get(f"/c/C-A?sig={customer_signature(sec_settings, 'C-A')}").status_code == 200


def test_new_tenant_never_sees_the_previous_tenants_history(seeded_db: psycopg.Connection,
                                                            sec_settings: Settings) -> None:
    from datetime import UTC, date, datetime

    from storage.tenancy import customer_tenancies

    at = datetime(2026, 3, 1, 11, tzinfo=UTC)
    assert customer_tenancies(seeded_db, "C-NEW", at) == {"M2": (date(2026, 2, 1), None)}
    s = sec_settings.model_copy(update={"api": sec_settings.api.model_copy(update={"as_of_for_customers": True})})
    with TestClient(create_app(s, s.database_dsn() or ""), follow_redirects=False) as c:
        q = f"sig={customer_signature(s, 'C-NEW')}&now=2026-03-01T12:00&lang=en"
        page = c.get(f"/c/C-NEW?{q}")
        assert page.status_code == 200 and "M2" in page.text
        csv = c.get(f"/c/C-NEW/meters/M2/readings.csv?{q}")
        assert csv.status_code == 200
        times = [line.split(",")[1] for line in csv.text.splitlines()[1:]]
        assert times and min(times) >= "2026-02-01T00:00:00+01:00"  # the move-in day, local time
        assert max(times) >= "2026-03-01"
        # the tenant before: the meter is no longer on their account
        old = c.get(f"/c/C-OLD?sig={customer_signature(s, 'C-OLD')}&now=2026-03-01T12:00&lang=en")
        assert old.status_code == 404 and not re.search(r"\bM2\b", old.text)  # \b: not inside a signature


def test_as_of_is_for_analysts_only(client: TestClient, sec_settings: Settings) -> None:
    sig = customer_signature(sec_settings, "C-A")
    assert client.get(f"/c/C-A?sig={sig}&now=2026-01-01").status_code == 403
    assert client.get(f"/c/C-A?sig={sig}&now=2026-01-01", headers=bearer(BOOTSTRAP)).status_code == 200
