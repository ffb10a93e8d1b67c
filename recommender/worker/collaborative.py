"""Rebuilding the co-engagement model when enough events arrived (the worker)."""

from __future__ import annotations

import logging
import time

import psycopg2
import psycopg2.extras

import db_utils
from config import get_settings
from recommender.model.collaborative import build
from recommender.store.collaborative import freshness, read_interactions, save

log = logging.getLogger(__name__)

REFRESH_LOCK_ID = 4_711_002  # pg_advisory_lock key: one refresh at a time per database


def refresh_if_due(force: bool = False) -> bool:
    """Rebuild the model when enough events arrived (`COLLAB_REFRESH_EVENTS`), or any arrived
    and it is older than `COLLAB_REFRESH_SECONDS`. One refresh at a time per database (an
    advisory lock), on its own connection so no pooled one is held. Returns whether it ran."""
    if not (force or _due()):
        return False
    settings = get_settings()
    conn = psycopg2.connect(db_utils.database_url(settings), application_name="podcast-collaborative")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (REFRESH_LOCK_ID,))
            if not cur.fetchone()[0]:
                return False  # another worker is refreshing it
        started = time.perf_counter()
        with conn, conn.cursor() as cur:  # one snapshot for the marks and the interactions
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute(
                "SELECT (SELECT coalesce(max(id), 0) FROM feedback_events),"
                " (SELECT coalesce(max(listened_at), '-infinity') FROM user_listens)"
            )
            event_mark, listen_mark = cur.fetchone()
            interactions = read_interactions(cur, settings.collab_max_items_per_listener)
        model = build(
            interactions, settings.collab_neighbors, settings.collab_alpha, settings.popularity_half_life_days
        )
        with conn:
            save(conn, model, event_mark, listen_mark, time.perf_counter() - started)
        log.info(
            "collaborative model: %d episodes from %d interactions in %.2f s",
            0 if model is None else len(model.episodes),
            len(interactions),
            time.perf_counter() - started,
        )
        return True
    finally:
        conn.close()  # also releases the advisory lock


def _due() -> bool:
    settings = get_settings()
    with db_utils.connection() as conn, conn.cursor() as cur:
        state = freshness(cur)
    pending, age = state["events_since_refresh"], state["age_seconds"]
    return pending >= settings.collab_refresh_events or (
        pending > 0 and (age is None or age >= settings.collab_refresh_seconds)
    )
