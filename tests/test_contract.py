"""The API keeps its contract: GET /api/openapi.json describes every route, and schemathesis sends
generated requests (valid and invalid) to a live server, checking that none answers 5xx and that
every answer (status, content type, body) is what the document says."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth, negative_data_rejection, positive_data_acceptance

import function_app
from tests.conftest import Api, sample_service

pytestmark = pytest.mark.service  # over HTTP, against local_runner.py in a subprocess

EXAMPLES = 60  # per operation and mode: 13 operations with input x 2 modes x 60 = 1,560 requests
# Not checked: auth (the local server runs without keys) and whether every request the schema
# allows is accepted (the server also checks what JSON Schema cannot say, see the document).
SKIPPED = [ignored_auth, positive_data_acceptance]
# A bad item of an array (add_podcasts, feedback) fails alone: the answer is 200 with its error.
SKIPPED_FOR_ARRAYS = [*SKIPPED, negative_data_rejection]


@pytest.fixture(scope="module")
def contract_api(create_database, tmp_path_factory) -> Iterator[Api]:
    """A server of its own: the generated requests add, change and delete episodes and users."""
    logs = tmp_path_factory.mktemp("logs")
    with sample_service(create_database("contract_api"), logs / "contract.log") as api:
        yield api


def test_the_document_lists_every_http_function(contract_api: Api):
    response = httpx.get(f"{contract_api.base_url}/api/openapi.json")  # anonymous
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    triggers = [f.get_trigger() for f in function_app.app.get_functions() if f.is_http_function()]
    auth = {
        (f"/api/{t.route}", str(getattr(m, "value", m)).lower()): str(
            getattr(t.auth_level, "value", t.auth_level)
        )
        for t in triggers
        for m in t.methods
    }
    assert set(document["paths"]) == {path for path, _ in auth}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert (operation["security"] == []) == (auth[path, method] == "anonymous"), path
    # A listener reads an episode with a function key; the operator changes it with the admin key.
    assert set(document["paths"]["/api/podcasts/{podcast_id}"]) == {"get", "patch", "delete"}
    assert (auth["/api/podcasts/{podcast_id}", "get"], auth["/api/podcasts/{podcast_id}", "patch"]) == (
        "function",
        "admin",
    )
    assert set(document["paths"]["/api/feedback"]["post"]["responses"]) >= {"200", "201", "400", "404", "500"}
    schemas = document["components"]["schemas"]
    assert schemas["Error"]["properties"]["error"]["$ref"] == "#/components/schemas/ErrorDetail"
    assert schemas["ErrorDetail"]["required"] == ["code", "message"]


def test_generated_requests_conform_to_the_document(contract_api: Api):
    schema = schemathesis.openapi.from_url(f"{contract_api.base_url}/api/openapi.json")
    session = requests.Session()
    sent, failures = 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            def conforms(case: schemathesis.Case) -> None:
                nonlocal sent
                sent += 1
                skipped = SKIPPED_FOR_ARRAYS if isinstance(case.body, list) else SKIPPED
                case.call_and_validate(session=session, excluded_checks=skipped, timeout=60)

            try:
                conforms()
            except Unsatisfiable:  # no parameters and no body: nothing to make invalid
                assert mode is GenerationMode.NEGATIVE
            except (
                AssertionError,
                FailureGroup,
            ) as exc:  # every operation is tried, failures reported together
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
    assert sent >= 1_000, sent
    print(f"{sent} generated requests")
