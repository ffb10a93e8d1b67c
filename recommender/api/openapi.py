"""The OpenAPI 3.1 document of the HTTP API. Request shapes come from the pydantic models of
`recommender/schemas.py`, answers from those of `responses.py` and `reports.py` (each with its
example); routes, methods and auth levels from what `endpoint` registers (`Route`), so none is
written twice. A typed client can be generated from it (`tests/test_openapi_client.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from config import get_settings
from recommender import schemas
from recommender.api import reports
from recommender.api import responses as replies
from recommender.api.responses import example_of

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Route:
    """An HTTP function as `endpoint` registers it."""

    name: str  # the function's name
    path: str  # its route under /api, e.g. "podcasts/{podcast_id}"
    methods: tuple[str, ...]
    auth: str  # "anonymous", "function" or "admin"


@dataclass(frozen=True)
class Operation:
    """What one method of a route takes and answers, besides the errors every route can answer."""

    summary: str
    ok: dict[int, str]  # success statuses and what they mean
    errors: tuple[int, ...] = ()
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    bulk: Literal["", "items", "events"] = ""  # an array body: "items" (only), "events" (or an object)
    # The success body: one model for every success status, or one per status; None: any object.
    result: type[BaseModel] | dict[int, type[BaseModel]] | None = None
    media: tuple[str, ...] = ()  # a success body that is not JSON: its media types


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("add_podcast", "POST"): Operation(
        "Add an episode, or update the one with its external_id",
        {200: "updated", 201: "created", 202: "stored; the AI service is down, so it is pending"},
        (409, 413),
        body=schemas.AddPodcastRequest,
        result=replies.Podcast,
    ),
    ("add_podcasts", "POST"): Operation(
        "Add many episodes; one result per item, a bad item fails alone",
        {200: "one result per item, in order"},
        (413,),
        body=schemas.AddPodcastRequest,
        bulk="items",
        result=replies.PodcastResults,
    ),
    ("podcast_by_id", "PATCH"): Operation(
        "Change some fields of an episode",
        {200: "the episode"},
        (404, 409, 413),
        body=schemas.UpdatePodcastRequest,
        result=replies.Podcast,
    ),
    ("podcast_by_id", "DELETE"): Operation(
        "Delete an episode (its history stays)", {200: "deleted"}, (404,), result=replies.DeletedPodcast
    ),
    ("delete_user", "DELETE"): Operation(
        "Delete a user and everything about them", {200: "deleted"}, (404,), result=replies.DeletedUser
    ),
    ("search", "GET"): Operation(
        "Search the catalog",
        {200: "the matches"},
        (404,),
        query=schemas.SearchQuery,
        result=replies.SearchResults,
    ),
    ("update_user_history", "POST"): Operation(
        "Create a user or add to their history",
        {200: "the user's profile state"},
        (401, 403, 404, 413),
        body=schemas.UpdateUserHistoryRequest,
        result=replies.HistorySummary,
    ),
    ("recommend_podcasts", "GET"): Operation(
        "Recommend episodes to a user",
        {200: "the page"},
        (401, 403, 404),
        query=schemas.RecommendQuery,
        result=replies.RecommendationPage,
    ),
    ("feedback", "POST"): Operation(
        "Record a feedback event (an object) or many (an array; one result per item)",
        {200: "the event was stored before (same event_id), or an array's results", 201: "stored"},
        (401, 403, 404, 413, 422),
        body=schemas.FeedbackRequest,
        bulk="events",
        result={200: replies.FeedbackAnswer, 201: replies.FeedbackEvent},
    ),
    ("analytics", "GET"): Operation(
        "Engagement per variant, day and rank",
        {200: "the report"},
        query=schemas.AnalyticsQuery,
        result=reports.Analytics,
    ),
    ("health", "GET"): Operation(
        "Database, AI service and worker state",
        {200: "healthy, or degraded", 503: "the database is unreachable"},
        result={200: reports.Health, 503: reports.HealthFailure},
    ),
    ("openapi_document", "GET"): Operation("This document", {200: "the OpenAPI document"}),
    ("ui", "GET"): Operation(
        "The console page: try the loop in a browser", {200: "the page"}, media=("text/html",)
    ),
    ("ui_file", "GET"): Operation(
        "A script or style sheet of the console page",
        {200: "the file"},
        (404,),
        media=("text/javascript", "text/css"),
    ),
    ("dashboard_figures", "GET"): Operation(
        "The A/B read-out with a 95 % interval, engagement by rank, daily activity and trending topics"
        " (`since` at most 366 days ago)",
        {200: "the figures"},
        query=schemas.AnalyticsQuery,
        result=reports.Dashboard,
    ),
    ("list_podcasts", "GET"): Operation(
        "A page of the catalogue's ready episodes, most recently added first, with filters",
        {200: "the episodes, and `next`: the `before_id` of the next page (null on the last)"},
        (404,),
        query=schemas.EpisodesQuery,
        result=replies.EpisodesPage,
    ),
    ("read_podcast", "GET"): Operation(
        "An episode (without its transcript)", {200: "the episode"}, (404,), result=replies.ListedPodcast
    ),
    ("similar_podcasts", "GET"): Operation(
        "More like this: the episodes its listeners also enjoyed and those close in subject, with reasons",
        {200: "the similar episodes"},
        (404,),
        query=schemas.SimilarQuery,
        result=replies.SimilarPodcasts,
    ),
    ("list_categories", "GET"): Operation(
        "The categories, with their ready episodes", {200: "the categories"}, result=replies.Categories
    ),
    ("read_user", "GET"): Operation(
        "A listener's own data: history, interest profile, listens",
        {200: "the listener"},
        (403, 404),
        result=replies.Listener,
    ),
    ("podcast_status", "GET"): Operation(
        "An episode as stored, with its enrichment status",
        {200: "the episode"},
        (404,),
        result=replies.Podcast,
    ),
}

ERRORS = {
    400: "bad input (invalid_json, invalid_request); nothing was written",
    401: "no or wrong key, or not signed in (unauthenticated)",
    403: "a listener acting for another user (forbidden)",
    404: "no such podcast, user, category or file (podcast_not_found, user_not_found, category_not_found, "
    "not_found)",
    405: "another method (method_not_allowed)",
    409: "a unique value another row has, e.g. an external_id (conflict); the first request with this "
    "Idempotency-Key still runs (idempotency_in_progress)",
    413: "the body or the array is too large (body_too_large, too_many_items)",
    415: "a body not sent as JSON, Content-Type: application/json (unsupported_media_type)",
    422: "a suggestion_id that is not this user's suggestion of this podcast (suggestion_mismatch); "
    "an Idempotency-Key used with another body (idempotency_key_reused)",
    500: "an unexpected failure (internal_error); never caused by the input",
    503: "the database or the AI service is unavailable (database_unavailable, ai_unavailable, "
    "schema_mismatch); retry shortly",
}
ALWAYS = (400, 405, 500, 503)

KEYS = [{"key": []}, {"code": []}]  # Azure checks them before the function runs
AUTH = {
    "anonymous": "No key needed.",
    "function": "Needs a function key.",
    "admin": "Needs the admin (master) key.",
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A repeat with the same key and body answers what the first answered.",
    "schema": {"type": "string", "pattern": "^[ -~]{1,200}$"},
}
PATH_PARAMETERS: dict[str, tuple[Any, str, Any]] = {  # type, description, example
    "podcast_id": (schemas.Id, "The episode's id", 4),
    "user_id": (schemas.UserId, "The listener's id", "alice"),
    "file": (schemas.UiFile, "A file of the console page", "app.js"),
}
SERVERS = [
    {"url": "http://localhost:7071", "description": "make run / func start"},
    {
        "url": "https://{app}.azurewebsites.net",
        "description": "The Function App in Azure",
        "variables": {"app": {"default": "podcast-recommender", "description": "The Function App's name"}},
    },
]


# What pydantic writes for a bound it cannot put into the type's own schema (an int with a
# validator before it, `schemas.Id`), in JSON Schema's words.
BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def standard(value: Any) -> Any:
    """`value` with pydantic's `ge`/`le`/`gt`/`lt` of a typed schema written as JSON Schema's bounds."""
    if isinstance(value, list):
        return [standard(item) for item in value]
    if not isinstance(value, dict):
        return value
    typed = "type" in value
    return {(BOUNDS[k] if typed and k in BOUNDS else k): standard(v) for k, v in value.items()}


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One parameter per field, with its description (also in its schema, where client generators
    read it) and example. An empty value (`?category=`) counts as not given."""
    schema = standard(model.model_json_schema(ref_template=REF))
    parameters = []
    for name, field in schema["properties"].items():
        required = name in schema.get("required", [])
        branches = [b for b in field.get("anyOf", [field]) if b.get("type") != "null"]
        value = {
            k: v for k, v in branches[0].items() if k not in ("title", "default", "description", "examples")
        }
        if not required:
            value = {"anyOf": [value, {"type": "string", "maxLength": 0}]}
        if field.get("default") is not None:
            value["default"] = field["default"]
        described = ". ".join(
            dict.fromkeys(d for d in (field.get("description"), branches[0].get("description")) if d)
        )
        value |= {"description": described} if described else {}
        parameter = {"name": name, "in": "query", "required": required, "schema": value}
        parameter |= {"description": described} if described else {}
        parameter |= {"example": field["examples"][0]} if field.get("examples") else {}
        parameters.append(parameter)
    return parameters


def path_parameter(name: str) -> dict[str, Any]:
    kind, description, sample = PATH_PARAMETERS[name]
    schema = standard(TypeAdapter(kind).json_schema()) | {"description": description}
    parameter = {"name": name, "in": "path", "required": True, "description": description}
    return parameter | {"schema": schema, "example": sample}


def component(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    """A reference to `model`'s schema, added to `components` with the models it refers to."""
    schema = standard(model.model_json_schema(ref_template=REF))
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def json_content(model: type[BaseModel] | None, components: dict[str, Any]) -> dict[str, Any]:
    """JSON of `model` (None: any object), with `model`'s example."""
    if model is None:
        return {"application/json": {"schema": {"type": "object"}}}
    return {"application/json": example({"schema": component(model, components)}, model)}


def example(media: dict[str, Any], model: type[BaseModel], many: bool = False) -> dict[str, Any]:
    """`media` with the example `model` carries, if it does (in an array: `many`)."""
    one = example_of(model)
    return media if one is None else media | {"example": [one] if many else one}


def request_body(operation: Operation, components: dict[str, Any]) -> dict[str, Any]:
    assert operation.body is not None
    name = operation.body.__name__
    one = component(operation.body, components)
    if not operation.bulk:
        return {"required": True, "content": {"application/json": example({"schema": one}, operation.body)}}
    settings = get_settings()
    limit = settings.max_bulk_items if operation.bulk == "items" else settings.max_bulk_events
    many = {"type": "array", "items": one, "maxItems": limit}
    schema = many if operation.bulk == "items" else {"anyOf": [one, many]}
    return {
        "required": True,
        "description": f"An item of an array that is not a {name} fails alone: its result is an error.",
        "content": {"application/json": example({"schema": schema}, operation.body, many=True)},
    }


def responses(operation: Operation, auth: str, method: str, components: dict[str, Any]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for status, meaning in operation.ok.items():
        result = operation.result[status] if isinstance(operation.result, dict) else operation.result
        content = (
            {media: {"schema": {"type": "string"}} for media in operation.media}
            if operation.media
            else json_content(result, components)
        )
        answers[str(status)] = {"description": meaning, "content": content}
    errors = set(ALWAYS) | set(operation.errors) | ({401} if auth != "anonymous" else set())
    errors |= {409, 422} if method == "POST" else set()  # Idempotency-Key
    errors |= {415} if operation.body is not None else set()
    for status in sorted(errors - set(operation.ok)):
        answers[str(status)] = {
            "description": ERRORS[status],
            "content": {"application/json": {"schema": component(replies.Error, components)}},
        }
    return answers


def document(routes: list[Route]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes`; every route and method needs an entry in OPERATIONS."""
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for route in routes:
        item = paths.setdefault(f"/api/{route.path}", {})
        names = [part[1:-1] for part in route.path.split("/") if part.startswith("{")]
        for method in route.methods:
            operation = OPERATIONS[(route.name, method)]
            spec: dict[str, Any] = {
                "operationId": f"{route.name}_{method.lower()}" if len(route.methods) > 1 else route.name,
                "summary": operation.summary,
                "description": AUTH[route.auth],
                "security": [] if route.auth == "anonymous" else KEYS,
                "parameters": [path_parameter(n) for n in names]
                + (query_parameters(operation.query) if operation.query else [])
                + ([IDEMPOTENCY_KEY] if method == "POST" else []),
                "responses": responses(operation, route.auth, method, components),
            }
            if operation.body is not None:
                spec["requestBody"] = request_body(operation, components)
            item[method.lower()] = spec
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Podcast recommender",
            "version": "1",
            "description": 'Errors are {"error": {"code", "message"}}. Besides this schema, the '
            "server checks what JSON Schema cannot say: text is trimmed before its length is checked, "
            "times are within the years 1900..9999 in UTC with an offset under 16 hours, and some "
            "fields depend on others (a rate event needs a value from 1 to 5).",
        },
        "servers": SERVERS,
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "key": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "code": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
    }
