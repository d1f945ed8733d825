"""Schemathesis fuzzes every operation of the OpenAPI document against a real server: every check passes.

Uploads are real images and videos of each documented media type (tests/api_media.py), so a
schema-valid request must be accepted and an invalid one refused with a 4xx; no 5xx, ever.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # fuzzes a real server

pytest.importorskip("fastapi", reason="needs the serve extra: pip install 'ferkit[serve]'")
schemathesis = pytest.importorskip("schemathesis", reason="needs schemathesis (the dev extra)")
from hypothesis import HealthCheck, settings  # noqa: E402

import api_media  # noqa: E402, F401  (registers the media-type strategies)
from serving_support import served_default  # noqa: E402


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    with served_default(tmp_path_factory.mktemp("jobs")) as url:
        yield url


@pytest.fixture(scope="module")
def api_schema(base_url):
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_no_operation_answers_a_server_error(case, base_url):
    response = case.call(base_url=base_url, timeout=60)
    assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
    case.validate_response(response)  # every check schemathesis has
