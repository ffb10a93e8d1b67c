"""HTTP layer (Azure Functions, Python v2 model): parse and validate, call `recommender`, shape JSON."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import azure.functions as func
import psycopg2
import psycopg2.errors
from pydantic import BaseModel, TypeAdapter, ValidationError

import dashboard
import idempotency
import openapi
import recommender
from config import get_settings
from db_utils import UNAVAILABLE, SchemaMismatchError
from feedback import record_feedback, record_feedback_bulk
from openai_client import deadline
from recommender import ApiError
from schemas import (
    MAX_BIGINT,
    AddPodcastRequest,
    AnalyticsQuery,
    BulkItems,
    FeedbackRequest,
    RecommendQuery,
    SearchQuery,
    UiFile,
    UpdatePodcastRequest,
    UpdateUserHistoryRequest,
    UserId,
    describe,
)

log = logging.getLogger(__name__)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
ROUTES: list[openapi.Route] = []  # what `endpoint` registered, for the OpenAPI document
USER_ID = TypeAdapter(UserId)

Handler = Callable[[func.HttpRequest], func.HttpResponse]
T = TypeVar("T", bound=BaseModel)


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, ensure_ascii=False, default=str),
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
        headers=headers,
    )


def error_response(status: int, code: str, message: str, **extra: object) -> func.HttpResponse:
    return json_response({"error": {"code": code, "message": message, **extra}}, status)


def validation_error(exc: ValidationError) -> ApiError:
    if any(e["type"] == "json_invalid" for e in exc.errors()):
        return ApiError(400, "invalid_json", "the body is not valid JSON")
    return ApiError(400, "invalid_request", describe(exc))


def parse_body(req: func.HttpRequest, model: type[T]) -> T:
    body = req.get_body() or b""
    if len(body) > get_settings().max_body_bytes:
        raise ApiError(413, "body_too_large", f"the body is over {get_settings().max_body_bytes} bytes")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc) from exc


def parse_items(
    req: func.HttpRequest, model: type[T], limit: int
) -> tuple[list[dict | None], list[tuple[int, T]]]:
    """A JSON array of up to `limit` bodies, each validated on its own. Returns the results list
    (one slot per item, the invalid ones' errors filled in) and the valid items with their index."""
    items = parse_body(req, BulkItems).root
    if len(items) > limit:
        raise ApiError(413, "too_many_items", f"at most {limit} items per request")
    results: list[dict | None] = [None] * len(items)
    valid: list[tuple[int, T]] = []
    for index, item in enumerate(items):
        try:
            valid.append((index, model.model_validate_json(json.dumps(item))))
        except ValidationError as exc:
            results[index] = error_item(validation_error(exc))
    return results, valid


def error_item(error: ApiError) -> dict:
    return {"error": {"code": error.code, "message": error.message}}


def parse_query(req: func.HttpRequest, model: type[T]) -> T:
    try:
        return model.model_validate({k: v for k, v in req.params.items() if v != ""})  # `?category=` = none
    except ValidationError as exc:
        raise validation_error(exc) from exc


def route_id(req: func.HttpRequest, name: str) -> int:
    value = req.route_params.get(name, "")
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_BIGINT):  # not "²"
        raise ApiError(400, "invalid_request", f"{name} must be a positive integer")
    return int(value)


def route_user_id(req: func.HttpRequest) -> str:
    try:
        return USER_ID.validate_python(req.route_params.get("user_id", ""))
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", f"user_id: {describe(exc)}") from exc


# Who may call what. In Azure the host checks the keys before a function runs: listener routes
# take the function key (the default level), operator routes the admin (master) key. The local
# runner enforces the same levels when LOCAL_FUNCTION_KEY / LOCAL_ADMIN_KEY are set.
OPERATOR = func.AuthLevel.ADMIN
PRINCIPAL_HEADER = "x-ms-client-principal-id"  # set by App Service Authentication, never by the caller
RETRY_AFTER_SECONDS = 2  # with 503 database_unavailable


def act_as(req: func.HttpRequest, *user_ids: str) -> None:
    """With USER_AUTH=easyauth, a listener route may only act for the signed-in caller."""
    if get_settings().user_auth != "easyauth":
        return
    caller = req.headers.get(PRINCIPAL_HEADER)
    if not caller:
        raise ApiError(401, "unauthenticated", "sign in first (App Service Authentication)")
    if any(user_id != caller for user_id in user_ids):
        raise ApiError(403, "forbidden", "a listener can only read and write their own data")


def conflict_message(exc: psycopg2.errors.UniqueViolation) -> str:
    constraint = exc.diag.constraint_name or ""
    if "external_id" in constraint:
        return "external_id is already used by another episode"
    return f"already used by another row ({constraint or 'a unique value'})"


def endpoint(
    methods: str | list[str], route: str, auth_level: func.AuthLevel | None = None
) -> Callable[[Handler], Handler]:
    """Register a handler for its methods. Every method reaches it, so others get a JSON 405
    (the same locally and in Azure), and errors become JSON without internals. AI calls end within
    REQUEST_BUDGET_SECONDS; a POST with an Idempotency-Key is answered once (`idempotency`)."""
    allowed = [methods] if isinstance(methods, str) else methods

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def wrapper(req: func.HttpRequest) -> func.HttpResponse:
            if req.method.upper() not in allowed:
                return json_response(
                    {"error": {"code": "method_not_allowed", "message": f"use {', '.join(allowed)}"}},
                    405,
                    headers={"Allow": ", ".join(allowed)},
                )
            try:
                with deadline(get_settings().request_budget_seconds):
                    return idempotency.handle(req, route, req.headers.get(PRINCIPAL_HEADER, ""), handler)
            except ApiError as exc:
                return error_response(exc.status, exc.code, exc.message)
            except psycopg2.errors.UniqueViolation as exc:  # e.g. an external_id another episode has
                return error_response(409, "conflict", conflict_message(exc))
            except psycopg2.DataError as exc:  # a value the schemas let through but Postgres cannot store
                log.warning("rejected by the database in %s: %s", handler.__name__, type(exc).__name__)
                return error_response(400, "invalid_request", "a value is out of range or not storable")
            except UNAVAILABLE as exc:  # nothing was committed: safe to retry
                log.warning("database unavailable in %s: %s", handler.__name__, type(exc).__name__)
                error = {"code": "database_unavailable", "message": "the database is unavailable; retry"}
                return json_response({"error": error}, 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
            except SchemaMismatchError as exc:
                log.error("%s", exc)
                return error_response(503, "schema_mismatch", str(exc))
            except Exception:
                log.exception("unexpected failure in %s", handler.__name__)
                return error_response(500, "internal_error", "unexpected server error; see the logs")

        level = (auth_level or func.AuthLevel.FUNCTION).value
        ROUTES.append(openapi.Route(handler.__name__, route, tuple(allowed), level))
        methods = [m.value for m in func.HttpMethod]
        return app.route(route=route, methods=methods, auth_level=auth_level)(wrapper)

    return decorate


@endpoint("POST", "add_podcast", auth_level=OPERATOR)
def add_podcast(req: func.HttpRequest) -> func.HttpResponse:
    podcast, created = recommender.add_podcast(parse_body(req, AddPodcastRequest))
    status = 202 if podcast["status"] == "pending" else 201 if created else 200
    return json_response(podcast, status)


@endpoint("POST", "add_podcasts", auth_level=OPERATOR)
def add_podcasts(req: func.HttpRequest) -> func.HttpResponse:
    """Bulk ingest: one result per item, in order; a bad item does not stop the good ones."""
    results, valid = parse_items(req, AddPodcastRequest, get_settings().max_bulk_items)
    stored = recommender.add_podcasts([request for _, request in valid]) if valid else []
    for (index, _), (podcast, created) in zip(valid, stored, strict=True):
        results[index] = {"id": podcast["id"], "status": podcast["status"], "created": created}
    return json_response({"results": results})


@endpoint(["PATCH", "DELETE"], "podcasts/{podcast_id}", auth_level=OPERATOR)
def podcast_by_id(req: func.HttpRequest) -> func.HttpResponse:
    podcast_id = route_id(req, "podcast_id")
    if req.method.upper() == "DELETE":
        return json_response(recommender.delete_podcast(podcast_id))
    return json_response(recommender.update_podcast(podcast_id, parse_body(req, UpdatePodcastRequest)))


@endpoint("DELETE", "users/{user_id}", auth_level=OPERATOR)
def delete_user(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(recommender.delete_user(route_user_id(req)))


@endpoint("GET", "search")
def search(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(recommender.search(parse_query(req, SearchQuery)))


@endpoint("POST", "update_user_history")
def update_user_history(req: func.HttpRequest) -> func.HttpResponse:
    request = parse_body(req, UpdateUserHistoryRequest)
    act_as(req, request.user_id)
    return json_response(recommender.update_user_history(request))


@endpoint("GET", "recommend_podcasts")
def recommend_podcasts(req: func.HttpRequest) -> func.HttpResponse:
    query = parse_query(req, RecommendQuery)
    act_as(req, query.user_id)
    return json_response(recommender.recommend(query))


@endpoint("POST", "feedback")
def feedback(req: func.HttpRequest) -> func.HttpResponse:
    """One event (an object): the stored event, 201, or 200 if its event_id was stored before.
    Many (an array): one result per item, in order; a bad item does not stop the good ones."""
    if not (req.get_body() or b"").lstrip().startswith(b"["):
        request = parse_body(req, FeedbackRequest)
        act_as(req, request.user_id)
        event, created = record_feedback(request)
        return json_response(event, 201 if created else 200)
    results, valid = parse_items(req, FeedbackRequest, get_settings().max_bulk_events)
    act_as(req, *(request.user_id for _, request in valid))
    outcomes = record_feedback_bulk([request for _, request in valid])
    for (index, _), outcome in zip(valid, outcomes, strict=True):
        if isinstance(outcome, ApiError):
            results[index] = error_item(outcome)
        else:
            event, created = outcome
            results[index] = {"id": event["id"], "created": created, "event_id": event["event_id"]}
    return json_response({"results": results})


@endpoint("GET", "analytics", auth_level=OPERATOR)
def analytics(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(recommender.analytics(parse_query(req, AnalyticsQuery)))


@endpoint("GET", "health", auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        return json_response(recommender.health())
    except psycopg2.Error as exc:
        log.warning("health check failed: %s", type(exc).__name__)
        return json_response({"status": "error", "database": {"reachable": False}}, 503)


@endpoint("GET", "openapi.json", auth_level=func.AuthLevel.ANONYMOUS)
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(openapi.document(ROUTES))


# --- the console page (GET /api/ui), its files and what it reads besides the routes above ------

UI_DIR = Path(__file__).resolve().parent / "ui"
UI_FILE = TypeAdapter(UiFile)
UI_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
UI_HEADERS = {  # the page runs its own files only (no inline script, no CDN) and calls this app alone
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def ui_response(name: str) -> func.HttpResponse:
    path = UI_DIR / name
    return func.HttpResponse(
        path.read_bytes(), mimetype=UI_TYPES[path.suffix], charset="utf-8", headers=UI_HEADERS
    )


@endpoint("GET", "ui", auth_level=func.AuthLevel.ANONYMOUS)
def ui(req: func.HttpRequest) -> func.HttpResponse:
    """The console: try the loop as a listener and watch it learn; its API calls carry the key
    typed into it."""
    return ui_response("index.html")


@endpoint("GET", "ui/{file}", auth_level=func.AuthLevel.ANONYMOUS)
def ui_file(req: func.HttpRequest) -> func.HttpResponse:
    """The console's script and style files: only the names in `schemas.UiFile`, never a path."""
    try:
        name = UI_FILE.validate_python(req.route_params.get("file", ""))
    except ValidationError as exc:
        raise ApiError(404, "not_found", "no such file") from exc
    return ui_response(name)


@endpoint("GET", "dashboard", auth_level=OPERATOR)
def dashboard_figures(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(dashboard.dashboard(parse_query(req, AnalyticsQuery)))


@endpoint("GET", "podcasts/{podcast_id}/status", auth_level=OPERATOR)
def podcast_status(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(dashboard.podcast(route_id(req, "podcast_id")))


@app.timer_trigger(schedule="%ENRICH_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=False)
def enrich_pending(timer: func.TimerRequest) -> None:
    """Retry what the AI service could not process inline (pending podcasts and histories)."""
    while recommender.enrich_pending():
        pass
