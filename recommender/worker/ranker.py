"""Training the ranker (`model/ranker.py`) and fitting the blend's weights (`model/fusion.py`) from
the log and the bootstrap's pages, when enough new reactions arrived."""

from __future__ import annotations

import logging

import numpy as np

import db_utils
from config import get_settings
from recommender import store
from recommender.model import fusion, ranker
from recommender.service import bootstrap, pages

log = logging.getLogger(__name__)

TRAIN_LOCK_ID = 4_711_004  # pg_advisory_lock key: one training at a time per database
KEPT_VERSIONS = 20
# The attributed-event mark of the last training that fitted nothing (passed to and from the
# process that trains: `worker/training.py`).
tried_at = 0


def due() -> bool:
    """Whether a training is due: there is none yet and a collaborative model to learn about, or
    `RANKER_RETRAIN_EVENTS` reactions to suggestions arrived since the last training (or attempt)."""
    with db_utils.connection() as conn:
        return _due(conn)


def _due(conn) -> bool:
    newest = store.ranker.state(conn)
    mark = max(tried_at, newest["label_mark"] if newest else 0)
    if newest is None and tried_at == 0 and store.collaborative.freshness(conn)["episodes"] > 0:
        return True
    return store.ranker.events_since(conn, mark) >= get_settings().ranker_retrain_events


def train_if_due(force: bool = False) -> bool:
    """Train when `due` (or `force`d), from the log and from pages recomputed with episodes hidden
    (`service/bootstrap.py`). Returns whether a model was stored."""
    global tried_at
    settings = get_settings()
    with db_utils.dedicated_connection("podcast-ranker") as conn:
        if not db_utils.try_advisory_lock(conn, TRAIN_LOCK_ID):
            return False
        with conn:
            if not (force or _due(conn)):
                return False
            logged = store.ranker.read_log(conn, settings.ranker_max_rows)
            x, hits, pages_of, listeners = bootstrap.pages_of(
                conn, settings.ranker_bootstrap_listeners, salt=str(logged.label_mark)
            )
        offset = int(logged.pages.max()) + 1 if len(logged.pages) else 0
        rows = (
            np.vstack([logged.features, x]),
            np.concatenate([logged.enjoyed, hits]),
            np.concatenate([logged.pages, pages_of + offset]),
            logged.listeners + listeners,
        )
        configured = pages.configured_blend()
        blend = fusion.fit(*rows, configured)
        trained = ranker.train(*rows, blend.weights if blend and blend.adopted else configured)
        if trained is None:
            tried_at = max(logged.label_mark, 1)
            return False
        with conn:
            version = store.ranker.save(conn, trained, blend, logged.label_mark)
            store.ranker.purge(conn, KEPT_VERSIONS)
    log.info(
        "ranker v%d (%s, %d rows): NDCG@5 %.4f against the blend's %.4f on held-out listeners, %s;"
        " blend fitted on %d pages: %s",
        version,
        trained.ranker.kind,
        trained.rows,
        trained.validation_ndcg,
        trained.blend_ndcg,
        "adopted" if trained.adopted else "not adopted: the blend ranks",
        0 if blend is None else blend.pages,
        "none" if blend is None else f"{blend.weights} ({'adopted' if blend.adopted else 'not adopted'})",
    )
    return True
