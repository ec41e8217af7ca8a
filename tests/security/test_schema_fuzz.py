"""A bounded schemathesis run over the app's OpenAPI schema against the real database: no input makes
any operation answer 5xx. (Driven by hypothesis directly: schemathesis' pytest plugin does not load under
the pytest this project uses.)"""

from __future__ import annotations

import psycopg
import schemathesis
from hypothesis import HealthCheck, given, settings
from sec_seed import BOOTSTRAP, bearer

from api.app import create_app
from meterflow.config import Settings

EXAMPLES_PER_OPERATION = 40


def test_no_input_makes_the_api_answer_5xx(seeded_db: psycopg.Connection, sec_settings: Settings) -> None:
    app = create_app(sec_settings, sec_settings.database_dsn() or "")
    app.state.pool.open(wait=True, timeout=30)
    failures: list[str] = []
    tried: list[str] = []
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        for result in schema.get_all_operations():
            operation = result.ok()
            tried.append(operation.label)

            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy())
            def call(case: schemathesis.Case) -> None:
                response = case.call(headers=bearer(BOOTSTRAP))
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}")

            call()
    finally:
        app.state.pool.close()
    assert len(tried) >= 5 and "POST /api/v1/readings/manual" in tried
    assert failures == []
