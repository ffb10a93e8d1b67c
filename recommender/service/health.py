"""Health: the database, the migrations, the AI service and the worker's state, from memory."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

import db_utils
from config import get_settings
from recommender import store
from recommender.ai import get_provider, status
from recommender.ai.interface import AIProvider, AIProviderError
from recommender.service import database

log = logging.getLogger(__name__)


def ai_state(provider: AIProvider) -> dict[str, Any]:
    """The AI service as this process saw it lately (`ai.status`: the window of recent calls of
    each capability, `embeddings` and `chat`). When nothing was heard from a capability for
    AI_PROBE_SECONDS (embeddings), or while its last call failed (either), one tiny call probes it
    in the background: never an AI call on the request path."""
    if provider.name == "local":
        return {"status": "ok"}  # offline: no service that could fail
    interval = get_settings().ai_probe_seconds
    due = [capability for capability in status.CAPABILITIES if status.probe_due(capability, interval)]
    if due:
        threading.Thread(target=probe_ai, args=(provider, due), name="ai-probe", daemon=True).start()
    return status.snapshot()


def probe_ai(provider: AIProvider, capabilities: list[str]) -> None:
    for capability in capabilities:
        with contextlib.suppress(AIProviderError):  # the provider records the outcome either way
            provider.probe(capability)


def health() -> dict[str, Any]:
    """Status `degraded` when migrations are missing or a capability of the AI service is failing
    (still HTTP 200: the API keeps answering, with fallbacks, through an AI outage)."""
    provider = get_provider()
    applied = database.ensure_database() if not database.ready() else None
    with db_utils.connection() as conn:
        with conn.cursor() as cur:
            applied = applied or db_utils.applied_migrations(cur)
            version = db_utils.pgvector_version(cur)
        counts = store.podcasts.counts(conn, get_settings().enrich_max_attempts)
        model = store.collaborative.freshness(conn)
    expected = [p.stem for p in db_utils.migration_files()]
    ai = ai_state(provider)
    return {
        "status": "ok" if applied == expected and ai["status"] != "failing" else "degraded",
        "database": {"reachable": True, "pgvector": version, "migrations": applied},
        "ai": {
            "provider": provider.name,
            "embedding_model": provider.embedding_model,
            "dimensions": provider.dimensions,
            "chat_model": provider.chat_model,
            **ai,
        },
        "podcasts": counts,
        "collaborative": {
            "refreshed_at": model["refreshed_at"],
            "age_seconds": None if model["age_seconds"] is None else round(model["age_seconds"], 1),
            "episodes_with_neighbours": model["episodes"],
            "refresh_seconds": None
            if model["refresh_seconds"] is None
            else round(model["refresh_seconds"], 3),
            "events_since_refresh": model["events_since_refresh"],
        },
    }
