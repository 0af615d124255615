"""Schemathesis against the app's own OpenAPI schema: whatever the input, never a 5xx.

Each operation's valid and invalid (negative) requests come from schemathesis'
Hypothesis strategies, run inside an ordinary test (its pytest loader does not support
this pytest).
"""

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from mnistlab.config import ServeConfig
from mnistlab.serve import create_app

EXAMPLES = 40


@pytest.fixture(scope="module")
def schema(tiny_runs):
    app = create_app(ServeConfig(run=str(tiny_runs[0])))
    with TestClient(app):  # runs the lifespan: the model is loaded once
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_no_server_errors(schema, mode):
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/predict", "/v1/models/{name}:predict", "/v2/models/{name}/infer"}  # fmt: skip
    if mode is GenerationMode.NEGATIVE:  # only what takes input can be sent bad input
        operations = [op for op in operations if op.method.upper() == "POST"]
    statuses = set()
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def check(case):
            response = case.call()
            statuses.add(response.status_code)
            assert response.status_code < 500, (case.method, case.path, response.text)

        check()
    # Invalid input must have been rejected, not only valid input accepted.
    assert (
        any(400 <= s < 500 for s in statuses)
        if mode is GenerationMode.NEGATIVE
        else 200 in statuses
    )
