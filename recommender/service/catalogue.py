"""The catalogue: adding, changing and deleting episodes, and enriching them (an LLM summary, then
the vector of the text).

The AI is called outside any database transaction, so slow AI calls never hold a pooled connection;
what it fails on stays `pending` for the worker to retry."""

from __future__ import annotations

import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import db_utils
from config import get_settings
from recommender import store
from recommender.ai import get_provider
from recommender.ai.interface import AIProviderError, Episode
from recommender.schemas import AddPodcastRequest, UpdatePodcastRequest
from recommender.service import idempotency
from recommender.service.database import require_database
from recommender.service.errors import NotFound
from recommender.store.podcasts import PodcastRow, ToEnrich

log = logging.getLogger(__name__)


def embedding_text(title: str, summary: str | None, description: str | None) -> str:
    """What an episode's vector is made from: its title and the generated summary come first."""
    return "\n\n".join(part for part in (title, summary, description) if part)


def _public(row: PodcastRow) -> PodcastRow:
    """The episode as the API answers it: without its transcript and the hash of its text."""
    return PodcastRow(**{k: v for k, v in row.items() if k in PodcastRow.__annotations__})


def inline_lease() -> int:
    """How long the worker leaves an episode to the request enriching it: its AI budget and the
    saving. Longer would keep an episode whose request could not save it (a database outage)
    waiting well after the database is back."""
    return int(get_settings().request_budget_seconds) + 20


def add_podcast(request: AddPodcastRequest) -> tuple[PodcastRow, bool]:
    """Store the episode first, then summarize and embed it. Returns (podcast, created).

    If the AI service fails the episode stays stored as 'pending' and the worker retries it.
    """
    [(podcast, created)] = add_podcasts([request])
    return podcast, created


def add_podcasts(requests: list[AddPodcastRequest]) -> list[tuple[PodcastRow, bool]]:
    """Store many episodes in one transaction, then enrich the new or changed ones together
    (one embedding request per batch). Returns (podcast, created) per request, in order."""
    require_database()
    # In external_id order, so that two batches naming the same episodes lock them in one order.
    order = sorted(
        range(len(requests)), key=lambda i: (requests[i].external_id is None, requests[i].external_id)
    )
    for attempt in db_utils.transactions():
        with attempt as conn:
            upserted = {
                i: store.podcasts.upsert(conn, requests[i].model_dump(), idempotency.row_key(i))
                for i in order
            }
            stored = [upserted[i] for i in range(len(requests))]
            pending = {row["id"]: row for row, _ in stored if row["status"] == "pending"}  # new text only
            store.podcasts.lease(conn, sorted(pending), inline_lease())
    saved = enrich(list(pending.values())) if pending else {}
    return [(_public(saved.get(row["id"]) or row), created) for row, created in stored]


def update_podcast(podcast_id: int, request: UpdatePodcastRequest) -> PodcastRow:
    """Change some fields; changed text is summarized and embedded again (or left pending)."""
    require_database()
    with db_utils.connection() as conn:
        row = store.podcasts.update(conn, podcast_id, request.model_dump(exclude_unset=True))
        if row is not None:
            store.podcasts.lease(conn, [podcast_id], inline_lease())
    if row is None:
        raise NotFound("podcast_not_found", f"no podcast {podcast_id}")
    if row["status"] == "pending":
        row = enrich([row]).get(podcast_id) or row
    return _public(row)


def delete_podcast(podcast_id: int) -> dict[str, Any]:
    require_database()
    with db_utils.connection() as conn:
        kept = store.podcasts.delete(conn, podcast_id)
    if kept is None:
        raise NotFound("podcast_not_found", f"no podcast {podcast_id}")
    return {"podcast_id": podcast_id, "deleted": True, "kept": kept}


def enrich(podcasts: list[ToEnrich]) -> dict[int, PodcastRow]:
    """Summarize the podcasts (SUMMARY_BATCH_SIZE per LLM call, AI_CONCURRENCY calls at once),
    embed them all in batched requests and store the results in one statement; returns the
    saved rows by id. What the AI service fails on stays pending, with the error recorded, for
    the worker to retry with backoff."""
    provider = get_provider()
    settings = get_settings()
    size = max(settings.summary_batch_size, 1)
    batches = [podcasts[start : start + size] for start in range(0, len(podcasts), size)]

    def summarize(batch: list[ToEnrich]) -> list[str | None] | AIProviderError:
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
    done: list[tuple[ToEnrich, str]] = []
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
            rows = store.podcasts.save_enrichments(
                conn, [(p, s, v) for (p, s), v in zip(done, vectors, strict=True)]
            )
            for error in set(failed.values()):
                ids = [pid for pid, e in failed.items() if e == error]
                store.podcasts.record_enrichment_failure(
                    conn, ids, error, settings.enrich_max_attempts, settings.enrich_slow_retry_seconds
                )
            calls = sum(not isinstance(a, Exception) for a in answers)
            if calls and provider.name != "local":
                store.analytics.count_ai_calls(conn, "summaries", calls)
    except db_utils.UNAVAILABLE as exc:  # the podcasts are stored: they stay pending, the worker retries
        log.warning("enrichment of %d podcast(s) not saved: %s", len(podcasts), type(exc).__name__)
        return {}
    if failed:
        log.warning("%d podcast(s) left pending: %s", len(failed), "; ".join(set(failed.values())))
    return {row["id"]: row for row in rows}


def podcast(podcast_id: int) -> PodcastRow:
    """One episode as stored, with its enrichment status: the page polls it after adding one."""
    require_database()
    with db_utils.connection() as conn:
        row = store.podcasts.get(conn, podcast_id)
    if row is None:
        raise NotFound("podcast_not_found", f"no podcast {podcast_id}")
    return row
