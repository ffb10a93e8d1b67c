"""The HTTP layer's one decorator (`endpoint`) and the helpers of every handler: parse and
validate the request, answer JSON, turn errors into JSON without internals."""

from __future__ import annotations

import difflib
import functools
import json
import logging
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import date, datetime
from typing import TypeVar

import azure.functions as func
import psycopg2
import psycopg2.errors
from pydantic import BaseModel, TypeAdapter, ValidationError

from config import get_settings
from db_utils import UNAVAILABLE, SchemaMismatchError
from openai_client import deadline
from recommender.api import idempotency, openapi
from recommender.api.errors import ApiError, status_of
from recommender.schemas import MAX_BIGINT, BulkItems, UserId, describe
from recommender.service.errors import ServiceError

log = logging.getLogger(__name__)

ROUTES: list[openapi.Route] = []  # what `endpoint` registered, for the OpenAPI document
# Whether the request being handled came by a listener route (a function key): every `user_id` it
# names is then bound to the caller (`act_as`), whichever of its inputs names it.
_listener_route: ContextVar[bool] = ContextVar("listener_route", default=False)
USER_ID = TypeAdapter(UserId)
Handler = Callable[[func.HttpRequest], func.HttpResponse]
T = TypeVar("T", bound=BaseModel)


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, ensure_ascii=False, default=json_value),
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
        headers=headers,
    )


def json_value(value: object) -> str:
    """What JSON has no type for: times in ISO 8601, anything else as text."""
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def error_response(status: int, code: str, message: str, **extra: object) -> func.HttpResponse:
    return json_response({"error": {"code": code, "message": message, **extra}}, status)


def validation_error(exc: ValidationError) -> ApiError:
    for error in exc.errors():
        if error["type"] == "json_invalid":  # says where: "number out of range at line 1 column 43"
            where = str(error["msg"]).removeprefix("Invalid JSON: ")
            return ApiError(400, "invalid_json", f"the body is not valid JSON: {where}")
    return ApiError(400, "invalid_request", describe(exc))


def parse_body(req: func.HttpRequest, model: type[T]) -> T:
    """The JSON body as `model`. Only a body declared as JSON is read: a cross-site form cannot
    post one (the browser asks first), so a signed-in listener's cookie cannot be used to write."""
    body = (req.get_body() or b"").removeprefix(UTF8_BOM)  # allowed by RFC 8259, and some tools write it
    if len(body) > get_settings().max_body_bytes:
        raise ApiError(413, "body_too_large", f"the body is over {get_settings().max_body_bytes} bytes")
    media = req.headers.get("content-type", "").partition(";")[0].strip().lower()
    if body and not (media == "application/json" or media.endswith("+json")):
        raise ApiError(415, "unsupported_media_type", "send the body as JSON: Content-Type: application/json")
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc) from exc
    return bound(req, parsed)


def is_array(req: func.HttpRequest) -> bool:
    """Whether the body is a JSON array (many items) rather than an object (one)."""
    return (req.get_body() or b"").removeprefix(UTF8_BOM).lstrip().startswith(b"[")


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
    for _, parsed in valid:
        bound(req, parsed)
    return results, valid


def error_item(error: ServiceError) -> dict:
    return {"error": {"code": error.code, "message": error.message}}


def parse_query(req: func.HttpRequest, model: type[T]) -> T:
    """The query string as `model`. A parameter it does not have is refused, not ignored: a
    misspelled filter (`categroy=`) would otherwise answer as if it had not been given."""
    for name in req.params.keys() - model.model_fields.keys():
        if re.fullmatch(CREDENTIAL_PARAMETER, name, re.IGNORECASE):
            continue
        close = difflib.get_close_matches(name, model.model_fields, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        known = ", ".join(model.model_fields)
        raise ApiError(400, "invalid_request", f"{name}: unknown parameter ({hint}this route takes {known})")
    try:
        parsed = model.model_validate({k: v for k, v in req.params.items() if v != ""})  # `?category=` = none
    except ValidationError as exc:
        raise validation_error(exc) from exc
    return bound(req, parsed)


def bound(req: func.HttpRequest, parsed: T) -> T:
    """`parsed`, once the caller may act for the `user_id` it names (on a listener route)."""
    user_id = getattr(parsed, "user_id", None)
    if _listener_route.get() and user_id is not None:
        act_as(req, user_id)
    return parsed


def route_id(req: func.HttpRequest, name: str) -> int:
    value = req.route_params.get(name, "")
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_BIGINT):  # not "²"
        raise ApiError(400, "invalid_request", f"{name} must be a positive integer")
    return int(value)


def route_user_id(req: func.HttpRequest) -> str:
    try:
        return USER_ID.validate_python(req.route_params.get("user_id", ""))
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", describe(exc, whole="user_id")) from exc


# Who may call what. In Azure the host checks the keys before a function runs: listener routes
# take the function key (the default level), operator routes the admin (master) key. The local
# runner enforces the same levels when LOCAL_FUNCTION_KEY / LOCAL_ADMIN_KEY are set.
OPERATOR = func.AuthLevel.ADMIN
PRINCIPAL_HEADER = "x-ms-client-principal-id"  # set by App Service Authentication, never by the caller
RETRY_AFTER_SECONDS = 2  # with every 503: the database or the AI service is unavailable or busy
REQUEST_START_HEADER = "x-request-start"
UTF8_BOM = b"\xef\xbb\xbf"
# A credential in the query string for what stands in front (the Functions host's `code`, an API
# gateway's `subscription-key`, ...): not a parameter of the route, and never logged.
CREDENTIAL_PARAMETER = r"code|[\w.-]*(?:key|token|secret|password|sig)[\w.-]*"


def budget_left(req: func.HttpRequest) -> float:
    """REQUEST_BUDGET_SECONDS counted from the request's arrival, where the server in front says
    when that was (`X-Request-Start`, seconds since the epoch: the local runner sets it). A
    request that waited for a thread has that much less left for AI calls; a client can only
    shorten its own budget with the header, never lengthen it."""
    budget = get_settings().request_budget_seconds
    try:
        waited = time.time() - float(req.headers.get(REQUEST_START_HEADER, ""))
    except ValueError:
        return budget
    return min(budget, max(budget - waited, 0.0))


def act_as(req: func.HttpRequest, *user_ids: str) -> None:
    """With USER_AUTH=easyauth, a listener route may only act for the signed-in caller: another
    listener's id is refused before anything is looked up, existing or not."""
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
    blueprint: func.Blueprint,
    methods: str | list[str],
    route: str,
    auth_level: func.AuthLevel | None = None,
    *,
    shares_route: bool = False,
) -> Callable[[Handler], Handler]:
    """Register a handler on `blueprint` for its methods. Every method reaches it, so others get a
    JSON 405 (the same locally and in Azure), and errors become JSON without internals. AI calls end within
    REQUEST_BUDGET_SECONDS; a POST with an Idempotency-Key is answered once (`idempotency`).

    `shares_route`: another handler serves other methods of this route, at another key level (a
    listener reads an episode, the operator changes it): each registers only its own methods."""
    allowed = [methods] if isinstance(methods, str) else methods

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def wrapper(req: func.HttpRequest) -> func.HttpResponse:
            method = req.method.upper()
            if method not in allowed and not (method == "HEAD" and "GET" in allowed):  # HEAD is a GET
                return json_response(
                    {"error": {"code": "method_not_allowed", "message": f"use {', '.join(allowed)}"}},
                    405,
                    headers={"Allow": ", ".join(allowed)},
                )
            _listener_route.set((auth_level or func.AuthLevel.FUNCTION) == func.AuthLevel.FUNCTION)
            try:
                with deadline(budget_left(req)):
                    return idempotency.handle(req, route, req.headers.get(PRINCIPAL_HEADER, ""), handler)
            except ServiceError as exc:
                status = status_of(exc)
                retry = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
                return json_response({"error": {"code": exc.code, "message": exc.message}}, status, retry)
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
        if shares_route:
            methods = [*allowed, *(["HEAD"] if "GET" in allowed else [])]
        return blueprint.route(route=route, methods=methods, auth_level=auth_level)(wrapper)

    return decorate
