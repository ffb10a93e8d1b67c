"""Plain-language search of the catalogue, with filters, bent toward a listener's taste."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import numpy as np

import db_utils
from config import get_settings
from recommender import store
from recommender.ai import get_provider
from recommender.ai.interface import AIProviderError
from recommender.model import profiles
from recommender.schemas import SearchQuery
from recommender.service import browse
from recommender.service.database import require_database
from recommender.service.errors import NotFound, Unavailable

log = logging.getLogger(__name__)


SEARCH_PROFILE_WEIGHT = 0.3  # how much a user's profile bends a search toward their taste


def search(query: SearchQuery) -> dict[str, Any]:
    """Plain-language search with filters; with `user_id`, the user's profile is blended in. Only
    matches at least `min_score` similar are shown: a page is not filled with unrelated episodes."""
    require_database()
    settings = get_settings()
    try:
        vector = embed_query(query.q)
    except AIProviderError as exc:
        raise Unavailable("ai_unavailable", "the embedding service is unavailable; retry shortly") from exc
    if query.user_id is not None:
        with db_utils.connection() as conn:
            user = store.users.get(conn, query.user_id)
        if user is None:
            raise NotFound("user_not_found", f"no user {query.user_id!r}")
        if user.embedding is not None:
            vector = profiles.unit(vector + SEARCH_PROFILE_WEIGHT * user.embedding)
    with db_utils.connection() as conn:
        browse.check_category(conn, query.category)
        results = store.candidates.search(
            conn,
            vector,
            query.limit,
            filters=browse.filters_of(query),
            ef_search=settings.hnsw_ef_search,
        )
    floor = settings.search_min_score if query.min_score is None else query.min_score
    shown = [{**row, "score": round(float(row["score"]), 4)} for row in results if row["score"] >= floor]
    return {"query": query.q, "min_score": floor, "results": shown}


@lru_cache(maxsize=2048)
def embed_query(text: str) -> np.ndarray:
    """Search queries repeat; their vectors are kept (in this process) to save AI calls."""
    [vector] = get_provider().embed([text])
    return vector
