"""A typed client can be generated from the OpenAPI document: it is valid OpenAPI 3.1, describes
every field, shows an example of every request and answer, and `openapi-python-client` turns it
into a package whose answers are typed models (not dicts). That client then calls a live server,
and every answer it gets is exactly what the document says: each key of the schema there, and no
other (checked with `additionalProperties: false`, which the document itself leaves open)."""

from __future__ import annotations

import copy
import importlib
import json
import subprocess
import sys
import typing
from collections.abc import Iterator
from datetime import datetime
from types import ModuleType
from typing import Any

import jsonschema
import pytest
from openapi_spec_validator import validate

import function_app  # noqa: F401  (registers the routes in ROUTES)
from recommender.api import openapi
from recommender.api.endpoint import ROUTES
from tests.conftest import Api, sample_service

PACKAGE = "podcast_client"
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER
NOT_JSON = {"openapi_document", "ui", "ui_file"}  # a free object, and the console's files


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """Built in this process: the app's routes, less those other tests register for themselves
    (test_http_edges.py's sink). That it lists every function: test_contract.py, over HTTP."""
    return openapi.document(
        [route for route in ROUTES if (route.name, route.methods[0]) in openapi.OPERATIONS]
    )


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for item in document["paths"].values():
        yield from ((operation["operationId"], operation) for operation in item.values())


def strict(components: dict[str, Any]) -> dict[str, Any]:
    """The components with every object that lists its properties closed to others."""

    def close(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("type") == "object" and "properties" in value:
                value.setdefault("additionalProperties", False)
            for inner in value.values():
                close(inner)
        elif isinstance(value, list):
            for inner in value:
                close(inner)

    closed = copy.deepcopy(components)
    close(closed)
    return closed


def check(document: dict[str, Any], schema: dict[str, Any], value: Any) -> None:
    """`value` is valid against `schema` of `document`, formats (date-time, ...) and unknown keys included."""
    root = {**schema, "components": strict(document["components"])}
    jsonschema.Draft202012Validator(root, format_checker=FORMATS).validate(value)


def success_media(operation: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for status, answer in operation["responses"].items():
        if status.startswith("2"):
            yield status, answer["content"]["application/json"]


def test_the_document_is_valid_openapi_with_servers(document: dict[str, Any]):
    validate(document)  # openapi-spec-validator: OpenAPI 3.1 and its JSON Schema dialect
    assert [server["url"] for server in document["servers"]] == [
        "http://localhost:7071",
        "https://{app}.azurewebsites.net",
    ]
    assert not FORMATS.conforms("2026-05-01T08:00:00", "date-time")  # formats are checked (no offset)


def test_every_answer_has_a_schema_of_its_own_and_every_field_a_description(document: dict[str, Any]):
    schemas = document["components"]["schemas"]
    for name, operation in operations(document):
        if name in NOT_JSON:
            continue
        for status, media in success_media(operation):
            ref = media["schema"]["$ref"].rpartition("/")[2]
            assert schemas[ref].get("properties") or schemas[ref].get("anyOf"), (name, status)
        for parameter in operation["parameters"]:
            assert parameter.get("description"), (name, parameter["name"])
    undescribed = [
        f"{component}.{field}"
        for component, schema in schemas.items()
        for field, value in schema.get("properties", {}).items()
        if not value.get("description")
    ]
    assert undescribed == []
    assert "Object" not in schemas and "BulkResults" not in schemas


def test_every_operation_has_examples_that_fit_its_schemas(document: dict[str, Any]):
    for name, operation in operations(document):
        if name in NOT_JSON:
            continue
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            check(document, body["schema"], body["example"])
        parameters = [p for p in operation["parameters"] if p["in"] in ("path", "query")]
        assert body is not None or parameters or name in ("list_categories", "health"), name
        for parameter in parameters:
            check(document, parameter["schema"], parameter["example"])
        for status, media in success_media(operation):
            assert "example" in media, (name, status)
            check(document, media["schema"], media["example"])


@pytest.fixture(scope="module")
def client_package(
    document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    """The package openapi-python-client generates from the document, imported."""
    work = tmp_path_factory.mktemp("client")
    (work / "openapi.json").write_text(json.dumps(document))
    (work / "config.json").write_text(json.dumps({"post_hooks": []}))  # no ruff run on the code
    done = subprocess.run(
        [
            sys.executable, "-m", "openapi_python_client", "generate", "--path", str(work / "openapi.json"),
            "--output-path", str(work / PACKAGE), "--meta", "none", "--config", str(work / "config.json"),
            "--fail-on-warning",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(work))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(work))
        for module in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[module]


def fields(model: type) -> dict[str, str]:
    return {name: str(kind) for name, kind in model.__annotations__.items()}


def returns(function: Any) -> set[str]:
    """The names of the types `function` returns (a union's members)."""
    annotation = function.__annotations__["return"]
    return {getattr(kind, "__name__", str(kind)) for kind in typing.get_args(annotation) or [annotation]}


def test_the_generated_client_answers_with_typed_models(client_package: ModuleType):
    models = importlib.import_module(f"{PACKAGE}.models")
    recommend = importlib.import_module(f"{PACKAGE}.api.default.recommend_podcasts")
    assert returns(recommend.sync) == {"RecommendationPage", "Error", "NoneType"}
    assert fields(models.RecommendationPage)["recommendations"] == "list[Recommendation]"
    item = fields(models.Recommendation)
    assert (item["podcast_id"], item["suggestion_id"], item["rank"]) == ("int", "int", "int")
    assert (item["title"], item["summary"], item["score"]) == ("str", "None | str", "float | None")
    assert (item["evidence"], item["reason_source"]) == ("Evidence", "RecommendationReasonSource")
    assert {e.value for e in models.RecommendationReasonSource} == {"cached", "generated", "fallback"}
    assert fields(models.Podcast)["created_at"] == "datetime.datetime"
    assert fields(models.EpisodesPage)["next_"] == "int | None"  # `next` is a builtin
    history = fields(models.UpdateUserHistoryRequest)  # one body, not the two halves of an anyOf
    assert {"user_id", "listening_history", "listened_podcast_ids"} <= set(history)
    feedback = importlib.import_module(f"{PACKAGE}.api.default.feedback")
    assert returns(feedback.sync) == {"FeedbackEvent", "FeedbackResults", "Error", "NoneType"}


@pytest.fixture(scope="module")
def client_api(create_database, tmp_path_factory) -> Iterator[Api]:
    """A sample service of its own: the client adds, changes and deletes episodes and a listener."""
    logs = tmp_path_factory.mktemp("logs")
    with sample_service(create_database("openapi_client"), logs / "openapi_client.log") as api:
        yield api


@pytest.mark.service
def test_the_generated_client_calls_the_service(
    client_package: ModuleType, client_api: Api, document: dict[str, Any]
):
    models = importlib.import_module(f"{PACKAGE}.models")
    by_id = dict(operations(document))
    client = client_package.AuthenticatedClient(
        base_url=client_api.base_url, token="unused locally", prefix="", auth_header_name="x-functions-key"
    )

    def call(operation: str, **arguments: Any) -> Any:
        """The operation through the generated client; its answer checked against the document."""
        module = importlib.import_module(f"{PACKAGE}.api.default.{operation}")
        response = module.sync_detailed(client=client, **arguments)
        status = str(int(response.status_code))
        assert status.startswith("2"), (operation, status, response.content)
        media = by_id[operation]["responses"][status]["content"]["application/json"]
        check(document, media["schema"], json.loads(response.content))
        return response.parsed

    health = call("health")
    assert isinstance(health, models.Health) and health.status.value in ("ok", "degraded")
    categories = call("list_categories")
    assert isinstance(categories.categories[0].episodes, int)
    page = call("list_podcasts", category="history", limit=2)
    assert isinstance(page, models.EpisodesPage) and isinstance(page.next_, int)
    episode = call("read_podcast", podcast_id=page.podcasts[0].id)
    assert isinstance(episode, models.ListedPodcast) and episode.status.value == "ready"
    similar = call("similar_podcasts", podcast_id=episode.id, limit=3)
    assert similar.similar and isinstance(similar.similar[0].evidence, models.Evidence)

    listened = client_api.sample_ids["sample-history-1"]
    body = models.UpdateUserHistoryRequest(
        user_id="client-user",
        listening_history="Roman roads and medieval trade",
        listened_podcast_ids=[listened],
    )
    summary = call("update_user_history", body=body)
    assert isinstance(summary, models.HistorySummary) and summary.created is True
    assert isinstance(summary.created_at, datetime) and summary.created_at.tzinfo is not None
    recommended = call("recommend_podcasts", user_id="client-user", limit=3)
    assert isinstance(recommended, models.RecommendationPage) and len(recommended.recommendations) == 3
    first = recommended.recommendations[0]
    assert isinstance(first, models.Recommendation) and isinstance(first.podcast_id, int) and first.rank == 1
    event = models.FeedbackRequest(
        user_id="client-user",
        podcast_id=first.podcast_id,
        event=models.FeedbackRequestEvent.LIKE,
        suggestion_id=first.suggestion_id,
    )
    stored = call("feedback", body=event)
    assert isinstance(stored, models.FeedbackEvent) and stored.weight > 0
    nobody = models.FeedbackRequest(
        user_id="nobody", podcast_id=first.podcast_id, event=models.FeedbackRequestEvent.SKIP
    )
    results = call("feedback", body=[event, nobody]).results
    assert isinstance(results[0], models.FeedbackResult) and isinstance(results[1], models.Error)
    assert results[1].error.code == "user_not_found"
    found = call("search", q="roman roads", user_id="client-user", limit=3)
    assert isinstance(found, models.SearchResults) and isinstance(found.results[0].score, float)
    own = call("read_user", user_id="client-user")
    assert isinstance(own, models.Listener) and own.listened_podcast_ids == [listened]

    added = call(
        "add_podcast",
        body=models.AddPodcastRequest(
            title="Salt roads", transcript="From Roman salaries to the salt roads of the Sahara.",
            published_at=datetime(2026, 5, 1, 8),  # no offset: the server reads it as UTC
        ),
    )  # fmt: skip
    assert isinstance(added, models.Podcast) and added.published_at.utcoffset() is not None
    bulk = call("add_podcasts", body=[models.AddPodcastRequest(title="Spice roads", transcript="Pepper ...")])
    assert isinstance(bulk.results[0], models.PodcastResult) and bulk.results[0].created
    changed = call(
        "podcast_by_id_patch", podcast_id=added.id, body=models.UpdatePodcastRequest(category="history")
    )
    assert changed.category == "history"
    assert call("podcast_status", podcast_id=added.id).id == added.id
    deleted = call("podcast_by_id_delete", podcast_id=added.id)
    assert isinstance(deleted, models.DeletedPodcast) and deleted.kept.feedback_events == 0

    report = call("analytics", since=datetime(2026, 1, 1))  # no offset either: answered with one
    assert isinstance(report, models.Analytics) and report.since.utcoffset() is not None
    figures = call("dashboard_figures")
    assert isinstance(figures, models.Dashboard) and figures.totals.suggestions >= 3
    gone = call("delete_user", user_id="client-user")
    assert isinstance(gone, models.DeletedUser) and gone.feedback_events == 2
