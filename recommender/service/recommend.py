"""Recommending: a listener's page, from the request to the answer.

The page prepared ahead for this request is served as stored while it holds; otherwise the page
is computed now (`pages.compute`) with the reasons written for it earlier, and an item without
one gets its evidence sentence at once, unless the caller asked to wait (`wait_seconds`) for the
LLM to write it. Every item served is stored in `suggested_podcasts` in the same transaction, and
the listener's next page is queued for the writer. Nothing is stored unless the answer is.
"""

from __future__ import annotations

from typing import Any

import db_utils
from config import get_settings
from openai_client import deadline
from recommender import store
from recommender.ai import get_provider
from recommender.model import reasons
from recommender.model.pages import Item
from recommender.schemas import RecommendQuery
from recommender.service import browse, page_writer, pages
from recommender.service.database import require_database
from recommender.service.errors import NotFound
from recommender.store.suggestions import Suggestion


def recommend(query: RecommendQuery) -> dict[str, Any]:
    require_database()
    for attempt in db_utils.transactions():
        with attempt as conn:
            store.pages.begin_page(conn, query.user_id)
            page = take_prepared(conn, query)
            if page is None or (query.wait_seconds and page.unwritten()):
                user = store.users.get(conn, query.user_id)
                if user is None:
                    message = f"no user {query.user_id!r}; create it with update_user_history"
                    raise NotFound("user_not_found", message)
                browse.check_category(conn, query.category)
                page = pages.compute(conn, user, query.limit, browse.filters_of(query))
            if not (query.wait_seconds and page.unwritten()):
                return serve(conn, page, {}, query)
    with deadline(query.wait_seconds):  # the LLM runs outside any transaction
        written = pages.write_reasons(page)
    for attempt in db_utils.transactions():
        with attempt as conn:
            store.pages.begin_page(conn, query.user_id)
            store.pages.take_prepared(conn, query.user_id)  # prepared meanwhile: obsolete now
            return serve(conn, page, written, query)
    raise AssertionError("unreachable: the last attempt raises")


def take_prepared(conn, query: RecommendQuery) -> pages.Page | None:
    """The page prepared for this request, if it still holds: the listener (no event, history or
    profile change) and the collaborative model unchanged since, the same size, category and
    variant, not older than PREPARE_MAX_AGE_SECONDS and every episode still ready. It is taken
    either way: the page served now makes it obsolete."""
    prepared = store.pages.take_prepared(conn, query.user_id)
    if prepared is None:
        return None
    variant = pages.variant_of(query.user_id)
    holds = (
        prepared["current"]
        and query.only_by_category()  # pages are prepared for a size and a category only
        and (prepared["page_size"], prepared["category"], prepared["variant"])
        == (query.limit, query.category, variant.name)
        and prepared["age_seconds"] <= get_settings().prepare_max_age_seconds
        and len(prepared["items"]) == prepared["size"]
    )
    if not holds:
        return None
    return pages.Page(variant, [Item.from_stored(item) for item in prepared["items"]], prepared=True)


def serve(conn, page: pages.Page, written: dict[int, str], query: RecommendQuery) -> dict[str, Any]:
    """Give each item its rank and reason, store the suggestions and queue the next page. Call
    after `store.pages.begin_page`, in the transaction that answers.

    The suggestions are stored before the page is queued: storing them takes a share lock on the
    listener's row (its foreign key), which feedback and profile writers lock before their pages,
    so every writer locks the listener's row first and its queued page after (no deadlock)."""
    suggestions = []
    for rank, item in enumerate(page.items, start=1):
        reason, source = reason_of(item, written)
        suggestions.append(
            Suggestion(item.podcast_id, item.similarity, rank, reason, item.strategy, source, item.features)
        )
    ids = store.suggestions.insert_suggestions(conn, query.user_id, page.variant.name, suggestions)
    # Only a listener served before this page counts as returning (`store.pages.queue`).
    page_writer.queue_next_page(conn, query.user_id, query.limit, query.category, returning_only=True)
    return {
        "user_id": query.user_id,
        "variant": page.variant.name,
        "prepared": page.prepared,
        "recommendations": [
            item.answer(s.rank, s.reason, s.reason_source, suggestion_id)
            for item, s, suggestion_id in zip(page.items, suggestions, ids, strict=True)
        ],
    }


def reason_of(item: Item, written: dict[int, str]) -> tuple[str, str]:
    """(reason, who wrote it): the LLM ahead of this request (`cached`) or for it (`generated`),
    else the evidence sentence (`fallback`). Offline, no LLM wrote any (a database may still hold
    the evidence sentences the offline provider once stored as if written)."""
    if item.reason and get_provider().name != "local":
        return item.reason, "cached"
    if item.podcast_id in written:
        return written[item.podcast_id], "generated"
    return reasons.sentence(item.evidence, item.podcast_id), "fallback"
