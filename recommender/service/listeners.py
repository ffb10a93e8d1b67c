"""Listeners: their stated history and listens, and deleting everything about one."""

from __future__ import annotations

import logging
from typing import Any

import db_utils
from recommender import store
from recommender.ai import get_provider
from recommender.ai.interface import AIProviderError
from recommender.schemas import UpdateUserHistoryRequest
from recommender.service import page_writer, profiles
from recommender.service.database import require_database
from recommender.service.errors import NotFound
from recommender.store.users import OwnView

log = logging.getLogger(__name__)


def update_user_history(request: UpdateUserHistoryRequest) -> dict[str, Any]:
    """Create or update the user and rebuild their profile vector."""
    require_database()
    listened = sorted(set(request.listened_podcast_ids))
    if listened:
        with db_utils.connection() as conn:
            missing = store.podcasts.missing_ids(conn, listened)
        if missing:
            raise NotFound("podcast_not_found", f"unknown listened_podcast_ids: {missing}")
    vector = None
    if request.listening_history:
        try:
            [vector] = get_provider().embed([request.listening_history])
        except AIProviderError as exc:  # keep the text; the enrichment worker embeds it later
            log.warning("history of user %s left pending: %s", request.user_id, exc)
    for attempt in db_utils.transactions():
        with attempt as conn:
            created = store.users.upsert_history(
                conn,
                request.user_id,
                request.name,
                request.listening_history,
                vector,
                listened,
                request.occurred_at,
            )
            profiles.refresh(conn, request.user_id)
            page_writer.queue_next_page(conn, request.user_id)  # they are about to ask for a page
            return {**store.users.history_summary(conn, request.user_id), "created": created}
    raise AssertionError("unreachable: the last attempt raises")


def own_view(user_id: str) -> OwnView:
    """What the listener may read of themselves: their history, interest profile, listens."""
    require_database()
    with db_utils.connection() as conn:
        view = store.users.own_view(conn, user_id)
    if view is None:
        raise NotFound("user_not_found", f"no user {user_id!r}")
    return view


def delete_user(user_id: str) -> dict[str, Any]:
    """A privacy request: the user, their listens, feedback and suggestions are all removed."""
    require_database()
    with db_utils.connection() as conn:
        removed = store.users.delete(conn, user_id)
    if removed is None:
        raise NotFound("user_not_found", f"no user {user_id!r}")
    return {"user_id": user_id, "deleted": True, **removed}
