"""What the API does, as plain functions: no Azure imports, so it is easy to test and reuse.

Each function takes validated input, talks to the AI provider outside any database
transaction (so slow AI calls never hold a pooled connection) and returns plain dicts.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import db_utils
from config import get_settings
from openai_client import AIProviderError, ReasonItem, get_provider
from schemas import AddPodcastRequest, RecommendQuery, UpdateUserHistoryRequest

log = logging.getLogger(__name__)

_ready = False
_ready_lock = threading.Lock()


class ApiError(Exception):
    """An error the caller can act on: becomes `{"error": {"code", "message"}}` with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def ensure_database() -> list[str]:
    """Apply migrations and check the embedding model, once per process."""
    global _ready
    with _ready_lock:
        provider = get_provider()
        with db_utils.connection() as conn:
            applied = db_utils.migrate(conn, provider.dimensions, provider.embedding_model)
        _ready = True
        return applied


def _database_ready() -> None:
    if not _ready:
        ensure_database()


def embedding_text(title: str, summary: str | None, description: str | None) -> str:
    """What an episode's vector is made from: its title and the generated summary come first."""
    return "\n\n".join(part for part in (title, summary, description) if part)


def _public_podcast(row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    row.pop("transcript", None)
    for key in ("published_at", "created_at", "updated_at"):
        if row.get(key) is not None:
            row[key] = row[key].isoformat()
    return row


def add_podcast(request: AddPodcastRequest) -> tuple[dict[str, Any], bool]:
    """Store the episode first, then summarize and embed it. Returns (podcast, created).

    If the AI service fails the episode stays stored as 'pending' and the worker retries it.
    """
    _database_ready()
    with db_utils.connection() as conn:
        row, created = db_utils.upsert_podcast(conn, request.model_dump())
    if row["status"] == "ready":  # same text as before: nothing to redo
        return _public_podcast(row), created
    saved = enrich([row]).get(row["id"])
    return _public_podcast(saved or row), created


def enrich(podcasts: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Summarize each podcast and embed them all in one batch; returns the saved rows by id.

    On an AI failure nothing is saved: the error is recorded and the worker retries later.
    """
    provider = get_provider()
    try:
        summaries = [
            provider.summarize(p["title"], p["description"] or "", p["transcript"]) for p in podcasts
        ]
        vectors = provider.embed(
            [
                embedding_text(p["title"], s, p["description"])
                for p, s in zip(podcasts, summaries, strict=True)
            ]
        )
    except AIProviderError as exc:
        log.warning("%d podcast(s) left pending: %s", len(podcasts), exc)
        with db_utils.connection() as conn:
            db_utils.record_enrichment_failure(conn, [p["id"] for p in podcasts], str(exc))
        return {}
    saved = {}
    with db_utils.connection() as conn:
        for podcast, summary, vector in zip(podcasts, summaries, vectors, strict=True):
            row = db_utils.save_enrichment(conn, podcast, summary, vector)
            if row is not None:
                saved[row["id"]] = row
    return saved


def enrich_pending(batch_size: int = 32) -> int:
    """One worker pass: due pending podcasts, then histories whose vector is missing."""
    _database_ready()
    settings = get_settings()
    with db_utils.connection() as conn:
        podcasts = db_utils.claim_pending_podcasts(conn, batch_size, settings.enrich_max_attempts)
    done = len(enrich(podcasts)) if podcasts else 0
    with db_utils.connection() as conn:
        histories = db_utils.pending_user_histories(conn, batch_size)
    if histories:
        try:
            vectors = get_provider().embed([h["listening_history"] for h in histories])
        except AIProviderError as exc:
            log.warning("%d user histories left pending: %s", len(histories), exc)
            return done
        with db_utils.connection() as conn:
            for history, vector in zip(histories, vectors, strict=True):
                db_utils.save_history_embedding(conn, history["id"], history["listening_history"], vector)
        done += len(histories)
    return done


def update_user_history(request: UpdateUserHistoryRequest) -> dict[str, Any]:
    """Create or update the user and rebuild their profile vector."""
    _database_ready()
    listened = sorted(set(request.listened_podcast_ids))
    if listened:
        with db_utils.connection() as conn:
            missing = db_utils.missing_podcast_ids(conn, listened)
        if missing:
            raise ApiError(404, "podcast_not_found", f"unknown listened_podcast_ids: {missing}")
    vector = None
    if request.listening_history:
        try:
            [vector] = get_provider().embed([request.listening_history])
        except AIProviderError as exc:  # keep the text; the enrichment worker embeds it later
            log.warning("history of user %s left pending: %s", request.user_id, exc)
    with db_utils.connection() as conn:
        user = db_utils.upsert_user_history(
            conn, request.user_id, request.name, request.listening_history, vector, listened
        )
    for key in ("created_at", "updated_at"):
        user[key] = user[key].isoformat()
    return user


def listener_profile(user: dict[str, Any]) -> str:
    """The text the reason writer sees about the listener."""
    parts = []
    if user["listening_history"]:
        parts.append(user["listening_history"][:1500])
    if user["listened_titles"]:
        parts.append("Recently listened: " + "; ".join(user["listened_titles"]))
    return "\n".join(parts)


def recommend(query: RecommendQuery) -> dict[str, Any]:
    """Nearest episodes to the user's profile, each with a reason, each written back."""
    _database_ready()
    settings = get_settings()
    with db_utils.connection() as conn:
        user = db_utils.get_user(conn, query.user_id)
        if user is None:
            raise ApiError(
                404, "user_not_found", f"no user {query.user_id!r}; create it with update_user_history"
            )
        if user["embedding"] is None:
            raise ApiError(409, "no_profile", "this user has no history with a vector yet")
        items = db_utils.nearest_podcasts(
            conn,
            user["embedding"],
            query.limit,
            user_id=query.user_id,
            resuggest_window_hours=settings.resuggest_window_hours,
            category=query.category,
            ef_search=settings.hnsw_ef_search,
        )
    reasons = write_reasons(listener_profile(user), items)
    for rank, item in enumerate(items, start=1):
        item["rank"] = rank
        item["reason"] = reasons.get(item["podcast_id"]) or item["summary"] or item["title"]
    if items:
        with db_utils.connection() as conn:
            ids = db_utils.insert_suggestions(conn, query.user_id, items)
        for item, suggestion_id in zip(items, ids, strict=True):
            item["suggestion_id"] = suggestion_id
            item["similarity"] = round(item["similarity"], 4)
    return {"user_id": query.user_id, "recommendations": items}


def write_reasons(profile: str, items: list[dict[str, Any]]) -> dict[int, str]:
    """One AI call for the whole page; on failure every item falls back to its summary."""
    if not items:
        return {}
    batch = [ReasonItem(i["podcast_id"], i["title"], i["summary"] or "") for i in items]
    try:
        return get_provider().write_reasons(profile, batch)
    except AIProviderError as exc:
        log.warning("reasons fell back to summaries: %s", exc)
        return {}


def health() -> dict[str, Any]:
    provider = get_provider()
    applied = ensure_database() if not _ready else None
    with db_utils.connection() as conn, conn.cursor() as cur:
        applied = applied or db_utils.applied_migrations(cur)
        counts = db_utils.podcast_counts(cur)
        version = db_utils.pgvector_version(cur)
    expected = [p.stem for p in db_utils.migration_files()]
    return {
        "status": "ok" if applied == expected else "degraded",
        "database": {"reachable": True, "pgvector": version, "migrations": applied},
        "ai": {
            "provider": provider.name,
            "embedding_model": provider.embedding_model,
            "dimensions": provider.dimensions,
            "chat_model": provider.chat_model,
        },
        "podcasts": counts,
    }
