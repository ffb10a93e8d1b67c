"""Rebuilding the collaborative model when enough events arrived: the co-engagement and EASE
neighbours (`model/collaborative.py`) and the episode factors (`model/factors.py`), from one snapshot of the
interactions, replaced together in one transaction."""

from __future__ import annotations

import logging
import time

import db_utils
from config import get_settings
from recommender import store
from recommender.model import collaborative, factors

log = logging.getLogger(__name__)

REFRESH_LOCK_ID = 4_711_002  # pg_advisory_lock key: one refresh at a time per database


def refresh_if_due(force: bool = False) -> bool:
    """Rebuild the model when it is `due` (or `force`d). One refresh at a time per database (an
    advisory lock), on its own connection so no pooled one is held. Returns whether it ran."""
    if not (force or due()):
        return False
    settings = get_settings()
    with db_utils.dedicated_connection("podcast-collaborative") as conn:
        if not db_utils.try_advisory_lock(conn, REFRESH_LOCK_ID):
            return False  # another worker is refreshing it
        started = time.perf_counter()
        snapshot = store.collaborative.read_snapshot(conn, settings.collab_max_items_per_listener)
        read = time.perf_counter()
        # What the models learn from first (EASE is fitted on each signal tried, the winner kept),
        # then the factors: what they keep is small (Y), what the neighbours keep is not, and
        # each step's working memory then comes on top of less.
        learned = collaborative.learn_signal(
            snapshot.interactions, snapshot.held_out, settings.ease_max_episodes, settings.ease_neighbors
        )
        signal_done = time.perf_counter()
        stored = store.factors.stored(conn) if settings.factor_warm_iterations else None
        warm = stored is not None and len(stored[0]) > 0  # start from the factors of the last training
        trained = factors.train(
            learned.interactions,
            min_listeners=settings.factor_min_listeners,
            regularization=settings.factor_regularization,
            alpha=settings.factor_alpha,
            iterations=settings.factor_warm_iterations if warm else settings.factor_iterations,
            threads=settings.factor_threads,
            start=stored if warm else None,
        )
        factors_done = time.perf_counter()
        model = collaborative.model_of(
            learned, settings.collab_neighbors, settings.collab_alpha, settings.popularity_half_life_days
        )
        neighbours_seconds = signal_done - started + time.perf_counter() - factors_done
        with conn:
            marks = snapshot.event_mark, snapshot.listen_mark
            store.collaborative.save(conn, model, *marks, neighbours_seconds)
            store.factors.save(conn, trained, factors_done - signal_done)
    log.info(
        "collaborative model: %d episodes from %d interactions in %.2f s (factors %.2f s)",
        0 if model is None else len(model.episodes),
        len(snapshot.interactions.listener),
        time.perf_counter() - started,
        factors_done - read,
    )
    return True


def due() -> bool:
    """Enough events arrived (`COLLAB_REFRESH_EVENTS`), or any arrived and the model is older than
    `COLLAB_REFRESH_SECONDS`; never where another trainer writes it (`COLLAB_REFRESH_IN_SERVICE`)."""
    settings = get_settings()
    if not settings.collab_refresh_in_service:
        return False
    with db_utils.connection() as conn:
        state = store.collaborative.freshness(conn)
    pending, age = state["events_since_refresh"], state["age_seconds"]
    return pending >= settings.collab_refresh_events or (
        pending > 0 and (age is None or age >= settings.collab_refresh_seconds)
    )
