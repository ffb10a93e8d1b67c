"""The models' timer: the collaborative model (co-engagement neighbours and factors) and then the
ranker, each when enough new events arrived, on a thread of their own: enrichment and requests
never wait on a training."""

from __future__ import annotations

from recommender.service.database import require_database
from recommender.worker import collaborative, ranker


def train_models() -> bool:
    """Whatever is due; returns whether anything was trained."""
    require_database()
    refreshed = collaborative.refresh_if_due()
    return ranker.train_if_due() or refreshed
