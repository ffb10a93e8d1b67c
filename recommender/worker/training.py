"""The models' timer: the ranker (a second or less) and then the collaborative model (co-engagement
neighbours and factors), each when enough new events arrived, on a thread of their own: enrichment
and requests never wait on a training."""

from __future__ import annotations

from recommender.service.database import require_database
from recommender.worker import collaborative, ranker


def train_models() -> bool:
    """Whatever is due; returns whether anything was trained. A ranker that fails to train still
    lets the collaborative model refresh (its error is raised after, for the timer to log)."""
    require_database()
    try:
        ranked = ranker.train_if_due()
    finally:
        refreshed = collaborative.refresh_if_due()
    return refreshed or ranked
