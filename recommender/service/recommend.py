"""Recommending: a listener's page, served as prepared or computed now, stored and answered."""

from __future__ import annotations

import logging
from typing import Any

import db_utils
from config import get_settings
from openai_client import deadline
from recommender import store
from recommender.model import reasons
from recommender.schemas import RecommendQuery
from recommender.service import page_writer, pages
from recommender.service.database import require_database
from recommender.service.errors import ApiError

log = logging.getLogger(__name__)


def recommend(query: RecommendQuery) -> dict[str, Any]:
    """The listener's page, each item with a reason, each written back to `suggested_podcasts`,
    in one transaction. The page prepared ahead is served as stored while it holds; otherwise it
    is computed (pages.compute) with the reasons written for it earlier, and an item without one
    gets its evidence sentence at once, unless the caller asked to wait (`wait_seconds`) for the
    LLM to write it."""
    require_database()
    with db_utils.connection() as conn:
        store.pages.begin_page(conn, query.user_id)
        page = pages.take_prepared(conn, query.user_id, query.limit, query.category)
        if page is None or (query.wait_seconds and page.unwritten()):
            user = store.users.get_user(conn, query.user_id)
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
            store.pages.begin_page(conn, query.user_id)
            store.pages.take_prepared_page(conn, query.user_id)  # prepared meanwhile: obsolete now
            served = serve(conn, page, written, query)
    page_writer.wake()
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
        store.pages.queue_page(
            conn,
            query.user_id,
            query.limit,
            query.category,
            settings.prepare_delay_seconds,
            served_within_hours=settings.prepare_active_hours,
        )
    if items:
        ids = store.suggestions.insert_suggestions(conn, query.user_id, page.variant.name, items)
        for item, suggestion_id in zip(items, ids, strict=True):
            item["suggestion_id"] = suggestion_id
    return {
        "user_id": query.user_id,
        "variant": page.variant.name,
        "prepared": page.prepared,
        "recommendations": items,
    }
