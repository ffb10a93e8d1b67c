"""Health: the database, the migrations, the AI service and the worker's state, from memory."""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
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


POOL_WAIT_SECONDS = 0.25  # health never waits longer for a pooled connection: it reports them busy

_figures: tuple[float, dict[str, Any]] | None = None  # (time.monotonic(), what was read last)


def health() -> dict[str, Any]:
    """Status `degraded` when migrations are missing, every pooled connection is busy or a
    capability of the AI service is failing (still HTTP 200: the API keeps answering, with
    fallbacks, through an AI outage). Never waits on the AI (its state is from memory) or on a busy
    pool (the figures read last are shown, with their age), so a load balancer's probe gets its
    answer at once. Only an unreachable database raises (503)."""
    provider = get_provider()
    busy, figures = database_figures()
    ai = ai_state(provider)
    database_state = {"reachable": True, **figures["database"], **busy}
    expected = [p.stem for p in db_utils.migration_files()]
    healthy = database_state.get("migrations") == expected and not busy
    return {
        "status": "ok" if healthy and ai["status"] != "failing" else "degraded",
        "database": database_state,
        "ai": {
            "provider": provider.name,
            "embedding_model": provider.embedding_model,
            "dimensions": provider.dimensions,
            "chat_model": provider.chat_model,
            **ai,
        },
        "podcasts": figures["podcasts"],
        "collaborative": figures["collaborative"],
        "ranker": figures["ranker"],
    }


def database_figures() -> tuple[dict[str, Any], dict[str, Any]]:
    """(`{}`, or `busy` when no pooled connection was free, with the age of the figures shown
    instead; the figures: the database's pgvector and migrations, episode counts, the model)."""
    global _figures
    cached = _figures
    try:
        figures = read_figures()
    except db_utils.DatabaseBusyError:
        if cached is None:
            return {"busy": True}, {"database": {}, "podcasts": None, "collaborative": None, "ranker": None}
        age = round(time.monotonic() - cached[0], 1)
        return {"busy": True, "figures_age_seconds": age}, copy.deepcopy(cached[1])
    _figures = time.monotonic(), figures
    return {}, copy.deepcopy(figures)


def ranker_state(learned: store.ranker.RankerState | None) -> dict[str, Any]:
    """The newest training, and what the loop ranks with: the learned ranker where it was adopted,
    else the blend fitted for this deployment where it beat the configured one, else that one."""
    if learned is None:
        return {"ranks": "blend", "version": None}
    fitted = (learned["blend"] or {}).get("adopted", False)
    return {"ranks": "learned" if learned["adopted"] else "fitted_blend" if fitted else "blend", **learned}


def read_figures() -> dict[str, Any]:
    applied = database.ensure_database() if not database.ready() else None
    with db_utils.connection(wait_seconds=POOL_WAIT_SECONDS) as conn:
        with conn.cursor() as cur:
            applied = applied or db_utils.applied_migrations(cur)
            version = db_utils.pgvector_version(cur)
        counts = store.podcasts.counts(conn, get_settings().enrich_max_attempts)
        model = store.collaborative.freshness(conn)
        learned = store.ranker.state(conn)
    refresh_seconds, factor_seconds = model["refresh_seconds"], model["factor_seconds"]
    recall = model["ease_validation_recall"]
    return {
        "database": {"pgvector": version, "migrations": applied},
        "podcasts": counts,
        "collaborative": {
            "refreshed_at": model["refreshed_at"],
            "age_seconds": None if model["age_seconds"] is None else round(model["age_seconds"], 1),
            "episodes_with_neighbours": model["episodes"],
            "refresh_seconds": None if refresh_seconds is None else round(refresh_seconds, 3),
            "events_since_refresh": model["events_since_refresh"],
            "factors": {
                "episodes": model["factor_episodes"],
                "trained_at": model["factors_trained_at"],
                "trained_by": model["factors_trained_by"],
                "train_seconds": None if factor_seconds is None else round(factor_seconds, 3),
            },
            "ease": {
                "regularization": model["ease_regularization"],
                "validation_recall_at_20": None if recall is None else round(recall, 4),
            },
            "signal": {
                "learns_from": model["signal"],
                "validation_recall_at_20": {
                    signal: None if value is None else round(value, 4)
                    for signal, value in (model["signal_recall"] or {}).items()
                },
            },
        },
        "ranker": ranker_state(learned),
    }
