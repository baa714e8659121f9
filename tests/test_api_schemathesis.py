"""Property-based API tests generated from the OpenAPI schema: no input may cause a 5xx.

Schemathesis derives requests (valid and invalid) for every operation from ``/openapi.json``;
besides "no server error", each response must match its documented status codes, content type
and schema, so the published schema stays true. Small limits keep the generated bodies, and the
tiny model's scoring, fast.
"""
from __future__ import annotations

import pytest
import schemathesis
import torch
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from tinylogbert.api.anomaly_routes import create_app
from tinylogbert.api.settings import ApiSettings

LIMITS = ApiSettings(max_body_bytes=64_000, max_lines=40, max_line_length=300,
                     max_explained_sessions=5, torch_threads=torch.get_num_threads())


@pytest.fixture(scope="module")
def api_schema(tiny_checkpoint):
    app = create_app(tiny_checkpoint, LIMITS)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_generated_requests_never_cause_a_server_error(case):
    case.call_and_validate(checks=[
        not_a_server_error, status_code_conformance, content_type_conformance,
        response_schema_conformance,
    ])
