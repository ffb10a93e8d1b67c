"""`Idempotency-Key` on POST routes: a repeated request answers what the first one answered.

The first request with a key claims it (a row of `idempotency_keys`, its own transaction), runs,
and stores its 2xx answer with the key for a day; any other outcome releases the key (nothing the
request acknowledged was written), so it can be retried. A repeat with the same body gets the
stored answer again (`Idempotent-Replayed: true`); with another body, 422; while the first still
runs, 409 (retry shortly). When the database cannot take the answer or the release, they are kept
in memory and written before this process's next claim; a claim abandoned otherwise (a crashed
process) is taken over after its lease.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import azure.functions as func

from config import get_settings
from recommender.api.errors import ApiError
from recommender.service import idempotency as answers

KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 200
LEASE_GRACE_SECONDS = 60  # past the AI budget: the pool wait and the database work of a request


def handle(
    req: func.HttpRequest, route: str, caller: str, handler: Callable[[func.HttpRequest], func.HttpResponse]
) -> func.HttpResponse:
    """`handler(req)`, or, for a POST with an `Idempotency-Key`, its stored answer."""
    key = req.headers.get(KEY_HEADER)
    if key is None or req.method.upper() != "POST":
        return handler(req)
    if not (0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and key.isprintable()):
        raise ApiError(
            400, "invalid_request", f"{KEY_HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    fingerprint = hashlib.sha256(caller.encode() + b"\n" + (req.get_body() or b"")).hexdigest()
    lease = get_settings().request_budget_seconds + LEASE_GRACE_SECONDS
    stored = answers.claim(key, route, fingerprint, lease)
    if stored is not None:
        return _replay(*stored, fingerprint)
    try:
        response = handler(req)
    except BaseException:
        answers.finish(key, route, None, None)
        raise
    if 200 <= response.status_code < 300:
        answers.finish(key, route, response.status_code, response.get_body().decode())
    else:
        answers.finish(key, route, None, None)
    return response


def _replay(
    stored_fingerprint: str, status: int | None, body: str | None, fingerprint: str
) -> func.HttpResponse:
    if stored_fingerprint != fingerprint:
        raise ApiError(422, "idempotency_key_reused", f"this {KEY_HEADER} was used with another request body")
    if status is None:
        raise ApiError(
            409, "idempotency_in_progress", f"a request with this {KEY_HEADER} is running; retry shortly"
        )
    return func.HttpResponse(
        body,
        status_code=status,
        mimetype="application/json",
        charset="utf-8",
        headers={REPLAYED_HEADER: "true"},
    )
