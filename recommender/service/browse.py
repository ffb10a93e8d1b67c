"""The catalogue as a listener browses it: one episode, a page of them, the categories, and the
episodes like one ("more like this": what its listeners also enjoyed, and what it is close to)."""

from __future__ import annotations

from typing import Any

import db_utils
from config import get_settings
from recommender import store
from recommender.model import reasons
from recommender.schemas import CatalogueFilters, EpisodesQuery, SimilarQuery
from recommender.service.database import require_database
from recommender.service.errors import NotFound
from recommender.store.podcasts import Filters, ListedPodcast

# "More like this" blends the two signals equally: each scaled to [0, 1] (cosine; co-engagement
# over the best of the list), so an episode both listened with and close in subject comes first.
CO_ENGAGEMENT_SHARE = 0.5


def episode(podcast_id: int) -> ListedPodcast:
    require_database()
    with db_utils.connection() as conn:
        found = store.podcasts.listed(conn, [podcast_id])
    if podcast_id not in found:
        raise NotFound("podcast_not_found", f"no podcast {podcast_id}")
    return found[podcast_id]


def episodes(query: EpisodesQuery) -> dict[str, Any]:
    """A page of ready episodes, most recently added first; `next` is the `before_id` of the next."""
    require_database()
    with db_utils.connection() as conn:
        check_category(conn, query.category)
        rows = store.podcasts.shelf(conn, filters_of(query), query.limit, query.before_id)
    return {"podcasts": rows, "next": rows[-1]["id"] if len(rows) == query.limit else None}


def filters_of(query: CatalogueFilters) -> Filters:
    return Filters(**query.model_dump(include=set(CatalogueFilters.model_fields)))


def categories() -> dict[str, Any]:
    require_database()
    with db_utils.connection() as conn:
        counted = store.podcasts.categories(conn)
    return {"categories": [{"category": category, "episodes": count} for category, count in counted]}


def check_category(conn, category: str | None) -> None:
    """A category no episode has is a mistake worth saying (`GET /api/categories` lists them), not
    an empty answer."""
    if category is not None and not store.podcasts.has_category(conn, category):
        raise NotFound("category_not_found", f"no episode has the category {category!r}; see /api/categories")


def similar(podcast_id: int, query: SimilarQuery) -> dict[str, Any]:
    """The episodes most like `podcast_id`: its co-engagement neighbours and its content
    neighbours, blended, each with the evidence and the reason that put it there."""
    require_database()
    wanted = 2 * query.limit  # from each signal, so the blend has both to choose from
    with db_utils.connection() as conn:
        vector = store.podcasts.vectors(conn, [podcast_id])
        if podcast_id not in vector:
            raise NotFound("podcast_not_found", f"no podcast {podcast_id}")
        content = []
        if vector[podcast_id] is not None:
            ef_search = get_settings().hnsw_ef_search
            content = store.candidates.similar_content(
                conn, vector[podcast_id], podcast_id, wanted, ef_search
            )
        co_engaged = store.collaborative.co_engaged(conn, podcast_id, wanted)
        rows = store.podcasts.listed(conn, [podcast_id, *(pid for pid, _ in content + co_engaged)])
    title = rows[podcast_id]["title"]
    similarity = dict(content)
    best = max((score for _, score in co_engaged), default=1.0)
    engagement = {pid: score / best for pid, score in co_engaged}
    score = {
        pid: CO_ENGAGEMENT_SHARE * engagement.get(pid, 0.0)
        + (1 - CO_ENGAGEMENT_SHARE) * similarity.get(pid, 0.0)
        for pid in similarity.keys() | engagement.keys()
    }
    ranked = sorted(score, key=lambda pid: (-score[pid], pid))[: query.limit]
    items = []
    for pid in ranked:
        kind = "also_enjoyed" if engagement.get(pid, 0.0) >= similarity.get(pid, 0.0) else "same_subject"
        evidence: reasons.Evidence = {"kind": kind, "podcast_id": podcast_id, "title": title}
        items.append(
            {
                **rows[pid],
                "similarity": round(similarity[pid], 4) if pid in similarity else None,
                "score": round(score[pid], 4),
                "evidence": evidence,
                "reason": reasons.sentence(evidence, pid),
            }
        )
    return {"podcast_id": podcast_id, "similar": items}
