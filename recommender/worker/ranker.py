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
_tried_at = 0  # the attributed-event mark of this process's last training that fitted nothing


def train_if_due(force: bool = False) -> bool:
    """Train when there is none yet and a collaborative model to learn about, or when
    `RANKER_RETRAIN_EVENTS` reactions to suggestions arrived since the last training (or attempt).
    Learns from the log and from pages recomputed with episodes hidden (`service/bootstrap.py`).
    Returns whether a model was stored."""
    global _tried_at
    settings = get_settings()
    with db_utils.dedicated_connection("podcast-ranker") as conn:
        if not db_utils.try_advisory_lock(conn, TRAIN_LOCK_ID):
            return False
        with conn:
            newest = store.ranker.state(conn)
            mark = max(_tried_at, newest["label_mark"] if newest else 0)
            first = newest is None and _tried_at == 0 and store.collaborative.freshness(conn)["episodes"] > 0
            if not (
                force or first or store.ranker.events_since(conn, mark) >= settings.ranker_retrain_events
            ):
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
            _tried_at = max(logged.label_mark, 1)
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
