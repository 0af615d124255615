"""Schemathesis against the app's own OpenAPI schema: whatever the input, never a 5xx."""

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from mnistlab.config import ServeConfig
from mnistlab.server import create_app


@pytest.fixture(scope="module")
def api_schema(tiny_runs):
    app = create_app(ServeConfig(run=str(tiny_runs[0])))
    with TestClient(app):  # runs the lifespan: the model is loaded once
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    case.call_and_validate(checks=[not_a_server_error])
