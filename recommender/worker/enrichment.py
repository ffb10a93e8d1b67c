"""The worker's pass: what the AI service could not do inline, retried. The models are trained
by a timer of their own (`worker/training.py`), so enrichment never waits on a training."""

from __future__ import annotations

import logging

import db_utils
from config import get_settings
from recommender import store
from recommender.ai import get_provider, status
from recommender.ai.interface import AIProviderError
from recommender.service import profiles
from recommender.service.analytics import LABELS_KEPT_DAYS
from recommender.service.catalogue import enrich
from recommender.service.database import require_database
from recommender.worker.interest_profiles import refresh_interest_profiles
from recommender.worker.recheck import recheck_stored

log = logging.getLogger(__name__)


def enrich_pending(batch_size: int = 32) -> int:
    """One worker pass: due pending podcasts, histories whose vector is missing and interest
    profiles with enough new feedback. Returns how
    many things it did. Podcasts given up on are due again at once when the AI service answers
    again (any call of this process, or the health probe, succeeded after failures)."""
    require_database()
    settings = get_settings()
    with db_utils.connection() as conn:
        if status.take_recovery():
            store.podcasts.requeue_failed(conn, settings.enrich_max_attempts)
        store.idempotency.purge(conn)
        store.pages.purge_prepared(conn, settings.prepare_max_age_seconds)
        store.analytics.purge_topic_labels(conn, LABELS_KEPT_DAYS)
        podcasts = store.podcasts.claim_pending(conn, batch_size)
    done = len(enrich(podcasts)) if podcasts else 0
    done += embed_pending_histories(batch_size)
    return done + refresh_interest_profiles() + recheck_stored()


def embed_pending_histories(batch_size: int) -> int:
    """Embed history texts the AI service could not embed inline."""
    with db_utils.connection() as conn:
        histories = store.users.pending_histories(conn, batch_size)
    if not histories:
        return 0
    try:
        vectors = get_provider().embed([history for _, history in histories])
    except AIProviderError as exc:
        log.warning("%d user histories left pending: %s", len(histories), exc)
        return 0
    for attempt in db_utils.transactions():
        with attempt as conn:
            store.users.lock(conn, [user_id for user_id, _ in histories])  # in the order writers lock
            for (user_id, history), vector in zip(histories, vectors, strict=True):
                if store.users.save_history_embedding(conn, user_id, history, vector):  # still theirs
                    profiles.refresh(conn, user_id)
    return len(histories)
