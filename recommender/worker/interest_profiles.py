"""Interest profiles: the LLM's text of what a listener enjoys, rewritten after enough feedback."""

from __future__ import annotations

import logging

import db_utils
from config import get_settings
from recommender import store
from recommender.ai import get_provider
from recommender.ai.interface import AIProviderError
from recommender.service import page_writer, profiles

log = logging.getLogger(__name__)


def refresh_interest_profiles(batch_size: int = 16) -> int:
    """Rewrite the interest profile of users with enough new feedback, embed and store it.

    Runs in the background worker, never on the recommend path."""
    settings = get_settings()
    with db_utils.connection() as conn:
        users = store.users.needing_interest_profile(conn, settings.profile_refresh_events, batch_size)
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
    for attempt in db_utils.transactions():
        with attempt as conn:
            store.users.lock(conn, [u["id"] for u in users])  # in the order every writer locks them
            for user, text, vector in zip(users, texts, vectors, strict=True):
                events = user["events_since_profile"]
                store.users.save_interest_profile(conn, user["id"], text, vector, events)
                profiles.refresh(conn, user["id"])
            if provider.name != "local":
                store.analytics.count_ai_calls(conn, "interest_profiles", len(users))
            page_writer.queue_next_pages(conn, [u["id"] for u in users])  # their profile moved their pages
    return len(users)
