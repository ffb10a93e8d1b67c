"""What the API does, as plain functions: no Azure imports, so it is easy to test and reuse.

Each function takes validated input, talks to the AI provider outside any database
transaction (so slow AI calls never hold a pooled connection) and returns plain dicts.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np

import ai_status
import collaborative
import db_utils
import pages
import ranking
import reasons
from config import get_settings
from openai_client import AIProvider, AIProviderError, Episode, deadline, get_provider
from schemas import (
    AddPodcastRequest,
    AnalyticsQuery,
    RecommendQuery,
    SearchQuery,
    UpdatePodcastRequest,
    UpdateUserHistoryRequest,
)

log = logging.getLogger(__name__)

SEARCH_PROFILE_WEIGHT = 0.3  # how much a user's profile bends a search toward their taste

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
            storage = db_utils.storage_type(provider.dimensions, get_settings().embedding_storage)
            applied = db_utils.migrate(conn, provider.dimensions, provider.embedding_model, storage)
        _ready = True
        return applied


def _database_ready() -> None:
    if not _ready:
        ensure_database()


def embedding_text(title: str, summary: str | None, description: str | None) -> str:
    """What an episode's vector is made from: its title and the generated summary come first."""
    return "\n\n".join(part for part in (title, summary, description) if part)


def _public_podcast(row: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in row.items() if k not in {"transcript", "content_hash"}}
    for key in ("published_at", "created_at", "updated_at"):
        if row.get(key) is not None:
            row[key] = row[key].isoformat()
    return row


def add_podcast(request: AddPodcastRequest) -> tuple[dict[str, Any], bool]:
    """Store the episode first, then summarize and embed it. Returns (podcast, created).

    If the AI service fails the episode stays stored as 'pending' and the worker retries it.
    """
    [(podcast, created)] = add_podcasts([request])
    return podcast, created


def add_podcasts(requests: list[AddPodcastRequest]) -> list[tuple[dict[str, Any], bool]]:
    """Store many episodes in one transaction, then enrich the new or changed ones together
    (one embedding request per batch). Returns (podcast, created) per request, in order."""
    _database_ready()
    with db_utils.connection() as conn:
        stored = [db_utils.upsert_podcast(conn, r.model_dump()) for r in requests]
        pending = {row["id"]: row for row, _ in stored if row["status"] == "pending"}  # unchanged text: no AI
        db_utils.lease_podcasts(conn, list(pending))
    saved = enrich(list(pending.values())) if pending else {}
    return [(_public_podcast(saved.get(row["id"]) or row), created) for row, created in stored]


def update_podcast(podcast_id: int, request: UpdatePodcastRequest) -> dict[str, Any]:
    """Change some fields; changed text is summarized and embedded again (or left pending)."""
    _database_ready()
    with db_utils.connection() as conn:
        row = db_utils.update_podcast(conn, podcast_id, request.model_dump(exclude_unset=True))
        if row is not None:
            db_utils.lease_podcasts(conn, [podcast_id])
    if row is None:
        raise ApiError(404, "podcast_not_found", f"no podcast {podcast_id}")
    if row["status"] == "pending":
        row = enrich([row]).get(podcast_id) or row
    return _public_podcast(row)


def delete_podcast(podcast_id: int) -> dict[str, Any]:
    _database_ready()
    with db_utils.connection() as conn:
        if not db_utils.delete_podcast(conn, podcast_id):
            raise ApiError(404, "podcast_not_found", f"no podcast {podcast_id}")
    return {"podcast_id": podcast_id, "deleted": True}


def delete_user(user_id: str) -> dict[str, Any]:
    """A privacy request: the user, their listens, feedback and suggestions are all removed."""
    _database_ready()
    with db_utils.connection() as conn:
        removed = db_utils.delete_user(conn, user_id)
    if removed is None:
        raise ApiError(404, "user_not_found", f"no user {user_id!r}")
    return {"user_id": user_id, "deleted": True, **removed}


def enrich(podcasts: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Summarize the podcasts (SUMMARY_BATCH_SIZE per LLM call, AI_CONCURRENCY calls at once),
    embed them all in batched requests and store the results in one statement; returns the
    saved rows by id. What the AI service fails on stays pending, with the error recorded, for
    the worker to retry with backoff."""
    provider = get_provider()
    settings = get_settings()
    size = max(settings.summary_batch_size, 1)
    batches = [podcasts[start : start + size] for start in range(0, len(podcasts), size)]

    def summarize(batch: list[dict[str, Any]]) -> list[str | None] | AIProviderError:
        try:
            return provider.summarize(
                [Episode(p["title"], p["description"] or "", p["transcript"] or "") for p in batch]
            )
        except AIProviderError as exc:
            return exc

    context = contextvars.copy_context()  # the request's AI deadline holds in the pool's threads too
    with ThreadPoolExecutor(max_workers=settings.ai_concurrency) as pool:
        answers = list(pool.map(lambda batch: context.copy().run(summarize, batch), batches))
    failed: dict[int, str] = {}
    done: list[tuple[dict[str, Any], str]] = []
    for batch, answer in zip(batches, answers, strict=True):
        if isinstance(answer, Exception):
            failed |= {p["id"]: str(answer) for p in batch}
            continue
        for podcast, summary in zip(batch, answer, strict=True):
            if summary is None:
                failed[podcast["id"]] = "the summaries answer left this episode out"
            else:
                done.append((podcast, summary))
    vectors: Any = []
    if done:
        try:
            vectors = provider.embed([embedding_text(p["title"], s, p["description"]) for p, s in done])
        except AIProviderError as exc:
            failed |= {p["id"]: str(exc) for p, _ in done}
            done = []
    try:
        with db_utils.connection() as conn:
            rows = db_utils.save_enrichments(
                conn, [(p, s, v) for (p, s), v in zip(done, vectors, strict=True)]
            )
            for error in set(failed.values()):
                ids = [pid for pid, e in failed.items() if e == error]
                db_utils.record_enrichment_failure(
                    conn, ids, error, settings.enrich_max_attempts, settings.enrich_slow_retry_seconds
                )
            calls = sum(not isinstance(a, Exception) for a in answers)
            if calls and provider.name != "local":
                db_utils.count_ai_calls(conn, "summaries", calls)
    except db_utils.UNAVAILABLE as exc:  # the podcasts are stored: they stay pending, the worker retries
        log.warning("enrichment of %d podcast(s) not saved: %s", len(podcasts), type(exc).__name__)
        return {}
    if failed:
        log.warning("%d podcast(s) left pending: %s", len(failed), "; ".join(set(failed.values())))
    return {row["id"]: row for row in rows}


def search(query: SearchQuery) -> dict[str, Any]:
    """Plain-language search with filters; with `user_id`, the user's profile is blended in."""
    _database_ready()
    settings = get_settings()
    try:
        vector = embed_query(query.q)
    except AIProviderError as exc:
        raise ApiError(503, "ai_unavailable", "the embedding service is unavailable; retry shortly") from exc
    if query.user_id is not None:
        with db_utils.connection() as conn:
            user = db_utils.get_user(conn, query.user_id)
        if user is None:
            raise ApiError(404, "user_not_found", f"no user {query.user_id!r}")
        profile = user["embedding"]
        if profile is not None:
            vector = ranking.unit(vector + SEARCH_PROFILE_WEIGHT * profile)
    with db_utils.connection() as conn:
        results = db_utils.search_podcasts(
            conn,
            vector,
            query.limit,
            category=query.category,
            language=query.language,
            max_duration_seconds=query.max_duration_seconds,
            published_after=query.published_after,
            ef_search=settings.hnsw_ef_search,
        )
    for row in results:
        row["score"] = round(float(row["score"]), 4)
        if row["published_at"] is not None:
            row["published_at"] = row["published_at"].isoformat()
    return {"query": query.q, "results": results}


@lru_cache(maxsize=2048)
def embed_query(text: str) -> np.ndarray:
    """Search queries repeat; their vectors are kept (in this process) to save AI calls."""
    [vector] = get_provider().embed([text])
    return vector


def enrich_pending(batch_size: int = 32) -> int:
    """One worker pass: due pending podcasts, histories whose vector is missing, interest
    profiles with enough new feedback, and the collaborative model when it is due. Returns how
    many things it did. Podcasts given up on are due again at once when the AI service answers
    again (any call of this process, or the health probe, succeeded after failures)."""
    _database_ready()
    settings = get_settings()
    with db_utils.connection() as conn:
        if ai_status.take_recovery():
            db_utils.requeue_failed_podcasts(conn, settings.enrich_max_attempts)
        db_utils.purge_idempotency_keys(conn)
        db_utils.purge_prepared_pages(conn, settings.prepare_max_age_seconds)
        podcasts = db_utils.claim_pending_podcasts(conn, batch_size)
    done = len(enrich(podcasts)) if podcasts else 0
    done += embed_pending_histories(batch_size)
    return done + refresh_interest_profiles() + collaborative.refresh_if_due()


def embed_pending_histories(batch_size: int) -> int:
    """Embed history texts the AI service could not embed inline."""
    with db_utils.connection() as conn:
        histories = db_utils.pending_user_histories(conn, batch_size)
    if not histories:
        return 0
    try:
        vectors = get_provider().embed([h["listening_history"] for h in histories])
    except AIProviderError as exc:
        log.warning("%d user histories left pending: %s", len(histories), exc)
        return 0
    with db_utils.connection() as conn:
        db_utils.lock_users(conn, [h["id"] for h in histories])  # in the order every writer locks them
        for history, vector in zip(histories, vectors, strict=True):
            db_utils.save_history_embedding(conn, history["id"], history["listening_history"], vector)
    return len(histories)


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
    settings = get_settings()
    with db_utils.connection() as conn:
        user = db_utils.upsert_user_history(
            conn, request.user_id, request.name, request.listening_history, vector, listened
        )
        if settings.prepare_pages:  # a listener setting up their history is about to ask for a page
            db_utils.queue_page(conn, request.user_id, None, None, settings.prepare_delay_seconds)
    pages.wake()
    for key in ("created_at", "updated_at"):
        user[key] = user[key].isoformat()
    return user


def recommend(query: RecommendQuery) -> dict[str, Any]:
    """The listener's page, each item with a reason, each written back to `suggested_podcasts`,
    in one transaction. The page prepared ahead is served as stored while it holds; otherwise it
    is computed (pages.compute) with the reasons written for it earlier, and an item without one
    gets its evidence sentence at once, unless the caller asked to wait (`wait_seconds`) for the
    LLM to write it."""
    _database_ready()
    with db_utils.connection() as conn:
        db_utils.begin_page(conn, query.user_id)
        page = pages.take_prepared(conn, query.user_id, query.limit, query.category)
        if page is None or (query.wait_seconds and page.unwritten()):
            user = db_utils.get_user(conn, query.user_id)
            if user is None:
                raise ApiError(
                    404, "user_not_found", f"no user {query.user_id!r}; create it with update_user_history"
                )
            page = pages.compute(conn, user, query.limit, query.category)
        if not (query.wait_seconds and page.unwritten()):
            served = serve(conn, page, {}, query)
    if query.wait_seconds and page.unwritten():
        with deadline(query.wait_seconds):  # the LLM runs outside any transaction
            written = pages.write_reasons(page)
        with db_utils.connection() as conn:
            db_utils.begin_page(conn, query.user_id)
            db_utils.take_prepared_page(conn, query.user_id)  # prepared meanwhile: obsolete now
            served = serve(conn, page, written, query)
    pages.wake()
    return served


def serve(conn, page: pages.Page, written: dict[int, str], query: RecommendQuery) -> dict[str, Any]:
    """Give each item its rank and reason, store the suggestions and queue the next page."""
    items = page.items
    for rank, item in enumerate(items, start=1):
        item["rank"] = rank
        cached = item.pop("cached_reason")
        if cached:
            item["reason"], item["reason_source"] = cached, "cached"
        elif item["podcast_id"] in written:
            item["reason"], item["reason_source"] = written[item["podcast_id"]], "generated"
        else:
            item["reason"], item["reason_source"] = reasons.sentence(item["evidence"]), "fallback"
        for internal in pages.INTERNAL_FIELDS:
            item.pop(internal, None)
    settings = get_settings()
    if settings.prepare_pages:  # before this page is stored: only returning listeners count
        db_utils.queue_page(
            conn,
            query.user_id,
            query.limit,
            query.category,
            settings.prepare_delay_seconds,
            served_within_hours=settings.prepare_active_hours,
        )
    if items:
        ids = db_utils.insert_suggestions(conn, query.user_id, page.variant.name, items)
        for item, suggestion_id in zip(items, ids, strict=True):
            item["suggestion_id"] = suggestion_id
    return {
        "user_id": query.user_id,
        "variant": page.variant.name,
        "prepared": page.prepared,
        "recommendations": items,
    }


# --- feedback (storing events: feedback.py) ----------------------------------------------


def refresh_interest_profiles(batch_size: int = 16) -> int:
    """Rewrite the interest profile of users with enough new feedback, embed and store it.

    Runs in the background worker, never on the recommend path."""
    settings = get_settings()
    with db_utils.connection() as conn:
        users = db_utils.users_needing_interest_profile(conn, settings.profile_refresh_events, batch_size)
    if not users:
        return 0
    provider = get_provider()
    try:
        texts = [
            provider.write_interest_profile(
                u["listening_history"] or "", u["liked_titles"], u["disliked_titles"]
            )
            for u in users
        ]
        vectors = provider.embed(texts)
    except AIProviderError as exc:
        log.warning("interest profiles left stale: %s", exc)
        return 0
    with db_utils.connection() as conn:
        db_utils.lock_users(conn, [u["id"] for u in users])  # in the order every writer locks them
        for user, text, vector in zip(users, texts, vectors, strict=True):
            db_utils.save_interest_profile(conn, user["id"], text, vector, user["events_since_profile"])
        if provider.name != "local":
            db_utils.count_ai_calls(conn, "interest_profiles", len(users))
        if settings.prepare_pages:  # the profile moved the listeners' pages: prepare them again
            db_utils.queue_pages_of_active(
                conn, [u["id"] for u in users], settings.prepare_active_hours, settings.prepare_delay_seconds
            )
    pages.wake()
    return len(users)


# --- analytics ------------------------------------------------------------------------------


def analytics(query: AnalyticsQuery) -> dict[str, Any]:
    """The figures the loop is judged by, since `since` (default: the last 30 days)."""
    _database_ready()
    since = query.since or datetime.now(UTC) - timedelta(days=30)
    with db_utils.connection() as conn:
        suggestion_rows = db_utils.suggestion_figures(conn, since)
        event_rows = db_utils.event_figures(conn, since)
        engaged = db_utils.engaged_podcasts(conn, since)
        ai_calls = db_utils.ai_call_figures(conn, since)
    events = Counter({r["event"]: r["events"] for r in event_rows if r["variant"] is None})
    events_by_variant: dict[str, Counter] = {}
    for row in event_rows:
        if row["variant"] is not None:
            events_by_variant.setdefault(row["variant"], Counter())[row["event"]] = row["events"]

    def figures(row: dict[str, Any], counts: Counter | None = None) -> dict[str, Any]:
        figure = {
            "suggestions": row["suggestions"],
            "average_similarity": None
            if row["average_similarity"] is None
            else round(row["average_similarity"], 4),
            "engaged_suggestions": row["engaged"],
            "engagement_rate": round(row["engaged"] / row["suggestions"], 4),
        }
        if counts is not None:
            figure |= {"likes": counts["like"], "dislikes": counts["dislike"]}
        return figure

    groups: dict[str, list[dict[str, Any]]] = {"all": [], "variant": [], "day": [], "rank": []}
    for row in suggestion_rows:
        groups[row["grouped_by"]].append(row)
    first_ranks = next((r["suggestions"] for r in groups["rank"] if r["rank"] == 1), 0)  # pages served
    total = (
        groups["all"][0] if groups["all"] else {"suggestions": 0, "average_similarity": None, "engaged": 0}
    )
    return {
        "since": since.isoformat(),
        **(
            figures(total)
            if total["suggestions"]
            else {
                "suggestions": 0,
                "average_similarity": None,
                "engaged_suggestions": 0,
                "engagement_rate": None,
            }
        ),
        "likes": events["like"],
        "dislikes": events["dislike"],
        "events": dict(events),
        "by_variant": [
            {"variant": r["variant"], **figures(r, events_by_variant.get(r["variant"], Counter()))}
            for r in groups["variant"]
        ],
        "by_day": [{"day": r["day"].isoformat(), **figures(r)} for r in groups["day"]],
        "by_rank": [{"rank": r["rank"], **figures(r)} for r in groups["rank"]],
        "trending_topics": trending_topics(engaged),
        "llm_calls": llm_spend(ai_calls, pages=first_ranks),
    }


def llm_spend(rows: list[dict[str, Any]], pages: int) -> dict[str, Any]:
    """LLM calls by purpose and day (the `openai`/`azure` providers), and reason calls per page
    served: what the loop spends against what it serves."""
    by_purpose = Counter()
    for row in rows:
        by_purpose[row["purpose"]] += row["calls"]
    return {
        **{purpose: by_purpose[purpose] for purpose in ("reasons", "summaries", "interest_profiles")},
        "pages_served": pages,
        "reason_calls_per_page": round(by_purpose["reasons"] / pages, 3) if pages else None,
        "by_day": [{"day": r["day"].isoformat(), "purpose": r["purpose"], "calls": r["calls"]} for r in rows],
    }


MIN_TOPIC_EPISODES = 2  # a topic is what several episodes share, not one popular episode


def trending_topics(engaged: list[dict[str, Any]], max_topics: int = 5) -> list[dict[str, Any]]:
    """Clusters of at least MIN_TOPIC_EPISODES recently engaged episodes, the most engaged first,
    labelled by one AI call for all of them."""
    if len(engaged) < MIN_TOPIC_EPISODES:
        return []
    groups = ranking.cluster(np.vstack([e["embedding"] for e in engaged]))
    groups = [group for group in groups if len(group) >= MIN_TOPIC_EPISODES]
    groups = sorted(groups, key=lambda group: -sum(engaged[i]["engagement"] for i in group))[:max_topics]

    def described(episode: dict[str, Any]) -> str:  # the category names the topic when titles share no word
        return f"{episode['title']} ({episode['category']})" if episode["category"] else episode["title"]

    texts = [[described(engaged[i]) for i in group[:8]] for group in groups]
    try:
        labels = get_provider().label_topics(texts) if groups else []
    except AIProviderError as exc:
        log.warning("topic labels fell back to categories: %s", exc)
        labels = [Counter(engaged[i]["category"] or "other" for i in g).most_common(1)[0][0] for g in groups]
    return [
        {
            "label": label,
            "episodes": len(group),
            "engagement": round(sum(engaged[i]["engagement"] for i in group), 3),
            "podcasts": [
                {"podcast_id": engaged[i]["podcast_id"], "title": engaged[i]["title"]} for i in group[:5]
            ],
        }
        for label, group in zip(labels, groups, strict=True)
    ]


def ai_state(provider: AIProvider) -> dict[str, Any]:
    """The AI service as this process last saw it. When nothing was heard from it for
    AI_PROBE_SECONDS, one tiny embedding probes it in the background: never an AI call per request."""
    if provider.name == "local":
        return {"status": "ok"}  # offline: no service that could fail
    if ai_status.probe_due(get_settings().ai_probe_seconds):
        threading.Thread(target=probe_ai, args=(provider,), name="ai-probe", daemon=True).start()
    return ai_status.snapshot()


def probe_ai(provider: AIProvider) -> None:
    with contextlib.suppress(AIProviderError):  # the provider records the outcome either way
        provider.embed(["health probe"])


def health() -> dict[str, Any]:
    """Status `degraded` when migrations are missing or the AI service is failing (still HTTP 200:
    the API keeps answering, with fallbacks, through an AI outage)."""
    provider = get_provider()
    applied = ensure_database() if not _ready else None
    with db_utils.connection() as conn, conn.cursor() as cur:
        applied = applied or db_utils.applied_migrations(cur)
        counts = db_utils.podcast_counts(cur, get_settings().enrich_max_attempts)
        version = db_utils.pgvector_version(cur)
        behaviour = collaborative.freshness(cur)
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
        "collaborative": behaviour,
    }
