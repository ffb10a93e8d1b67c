"""The models' timer: the ranker (a second or less) and then the collaborative model (co-engagement
neighbours and factors), each when enough new events arrived, on a thread of their own: enrichment
and requests never wait on a training."""

from __future__ import annotations

from recommender.service.database import require_database
from recommender.worker import collaborative, ranker


def train_models() -> bool:
    """Whatever is due; returns whether anything was trained."""
    require_database()
    ranked = ranker.train_if_due()
    return collaborative.refresh_if_due() or ranked
