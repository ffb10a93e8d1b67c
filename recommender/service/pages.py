"""A listener's page of recommendations: prepared ahead, or computed when they ask for it.

No request waits on the LLM in the steady state, and most do not rank either. Each served page
(after the listener's first), each event of a listener served lately and each history update
queues the listener; once due, this process's writer thread computes the page their next
request will get (the same function a request runs), one page at a time, has the LLM write the
reasons it lacks, one call per page, and stores the page with them. The next request serves
that page as stored while the listener is unchanged and its episodes are still ready; otherwise
it computes the page, serving the reasons written for it earlier (in `reasons`, valid while the
evidence they were written from holds) and the evidence sentence for the rest, while the writer
catches up.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

import db_utils
from config import get_settings
from recommender import store
from recommender.ai import get_provider
from recommender.ai.interface import AIProviderError, ReasonItem
from recommender.ai.text import content_words
from recommender.model import ranking, reasons
from recommender.store import collaborative

log = logging.getLogger(__name__)

CANDIDATES_PER_SLOT = 4  # candidates fetched per requested item, for re-ranking to choose from
MIN_CANDIDATES = 20


INTERNAL_FIELDS = ("embedding", "collaborative", "because_of", "popularity", "listeners")  # not served
CURRENT_FIELDS = ("title", "summary", "category")  # a prepared page's episodes: read when it is served


@dataclass
class Page:
    variant: ranking.Variant
    items: list[dict[str, Any]]  # each with its evidence and the valid written reason, if any
    user: dict[str, Any] | None = None  # what a computed page was computed from (get_user) ...
    positives: list[dict[str, Any]] | None = None  # ... and the listener's enjoyed episodes
    prepared: bool = False  # computed ahead and served as stored: its reasons are all it has

    def unwritten(self) -> list[dict[str, Any]]:
        return [item for item in self.items if not item["cached_reason"]]


def compute(conn, user: dict[str, Any], limit: int, category: str | None) -> Page:
    """Candidates by content (HNSW) and by co-engagement, blended with popularity, re-ranked for
    the user's variant, each with its evidence. Users with nothing to go on get popular, then
    new, episodes. Reads only: the same state gives the same page."""
    settings = get_settings()
    variant = ranking.assign_variant(user["id"], ranking.parse_split(settings.ab_split), settings.ab_salt)
    profile = user["embedding"] if variant.use_feedback else user["history_profile"]
    excluded, recent = store.candidates.exclusions(conn, user["id"], settings.resuggest_window_hours)
    mine = collaborative.listener_items(conn, user["id"])
    wanted = max(limit * CANDIDATES_PER_SLOT, MIN_CANDIDATES) + len(recent)
    candidates = gather_candidates(
        conn, user, profile, mine if variant.use_behaviour else [], wanted, excluded, category
    )
    if candidates:
        negatives = store.candidates.negative_examples(conn, user["id"]) if variant.use_feedback else None
        # Exploration is random but stable for a user within a day, so the page prepared ahead
        # and the page then requested make the same picks.
        rng = random.Random(f"{user['id']}:{datetime.now(UTC).date()}")
        items = choose(candidates, recent, limit, variant, blend_weights(variant), negatives, rng)
    else:
        items = collaborative.popular(conn, limit + len(recent), excluded=excluded, category=category)
        items.sort(key=lambda item: item["podcast_id"] in recent)  # stable: fresh ones first
        items = items[:limit]
        written = store.suggestions.written_reasons(
            conn, user["id"], [i["podcast_id"] for i in items], user["reasons_valid_from"]
        )
        for item in items:
            item |= {"strategy": "popular", "similarity": None}
            item["cached_reason"], item["cached_evidence"] = written.get(item["podcast_id"], (None, None))
    positives = [m for m in mine if m["weight"] > 0]
    history_words = set(content_words(f"{user['listening_history'] or ''} {user['interest_profile'] or ''}"))
    for item in items:
        item["evidence"] = reasons.evidence(item, positives, history_words)
        if item.pop("cached_evidence", None) != reasons.evidence_key(item["evidence"]):
            item["cached_reason"] = None  # written for other evidence: no longer true
    return Page(variant, items, user, positives)


def blend_weights(variant: ranking.Variant) -> ranking.BlendWeights:
    if not variant.use_behaviour:
        return ranking.BlendWeights(collaborative=0.0, content=1.0, popularity=0.0)
    settings = get_settings()
    return ranking.BlendWeights(
        settings.blend_collaborative, settings.blend_content, settings.blend_popularity
    )


def gather_candidates(
    conn,
    user: dict[str, Any],
    profile: np.ndarray | None,
    mine: list[dict[str, Any]],
    count: int,
    excluded: list[int],
    category: str | None,
) -> list[dict[str, Any]]:
    """Content neighbours of the profile and behaviour neighbours of the listener's episodes,
    each with its co-engagement score (0 when none) and the episode of theirs behind it."""
    scope = {"user_id": user["id"], "reasons_valid_from": user["reasons_valid_from"]}
    content = []
    if profile is not None:
        content = store.candidates.candidate_podcasts(
            conn,
            profile,
            count,
            excluded=excluded,
            category=category,
            ef_search=get_settings().hnsw_ef_search,
            **scope,
        )
    known = {row["podcast_id"] for row in content}
    scores = collaborative.neighbour_scores(
        conn, mine, count, include=sorted(known), excluded=excluded, category=category
    )
    extra = store.candidates.candidates_by_id(
        conn, [pid for pid in scores if pid not in known], profile, **scope
    )
    candidates = content + extra
    for row in candidates:
        score = scores.get(row["podcast_id"])
        row["collaborative"] = float(score["score"]) if score else 0.0
        row["because_of"] = score["because_of"] if score else None
    return candidates


def choose(
    candidates: list[dict[str, Any]],
    recent: set[int],
    limit: int,
    variant: ranking.Variant,
    weights: ranking.BlendWeights,
    negatives: np.ndarray | None,
    rng: random.Random,
) -> list[dict[str, Any]]:
    """Blend and re-rank; episodes suggested within the window are used only when fresh ones
    run out."""
    fresh = [c for c in candidates if c["podcast_id"] not in recent]
    pool = fresh if len(fresh) >= limit else fresh + [c for c in candidates if c["podcast_id"] in recent]
    relevance, behaviour_led = ranking.blend(
        np.array([c["collaborative"] for c in pool]),
        np.array([c["similarity"] or 0.0 for c in pool]),
        np.array([c["popularity"] for c in pool]),
        weights,
    )
    vectors = np.vstack([c["embedding"] for c in pool])
    items = []
    for row, strategy in ranking.rerank(relevance, vectors, limit, variant, negatives, rng):
        item = dict(pool[row])
        item["strategy"] = "collaborative" if strategy == "similar" and behaviour_led[row] else strategy
        item["similarity"] = None if item["similarity"] is None else round(item["similarity"], 4)
        item["score"] = round(float(relevance[row]), 4)
        items.append(item)
    return items


def write_reasons(page: Page) -> dict[int, str]:
    """One LLM call for the page's items without a valid reason; stored for later pages too.
    Returns the reasons written by podcast id (none when the AI service failed)."""
    unwritten = page.unwritten()
    if not unwritten:
        return {}
    assert page.user is not None and page.positives is not None  # reasons are written for computed pages
    written = ask_for_reasons(reasons.listener_profile(page.user, page.positives), unwritten)
    if written:
        keys = {item["podcast_id"]: reasons.evidence_key(item["evidence"]) for item in unwritten}
        rows = [(pid, keys[pid], reason) for pid, reason in written.items()]
        with db_utils.connection() as conn:
            store.pages.commit_asynchronously(conn)
            # Dated when the page was read: a profile that changed meanwhile makes them stale.
            store.suggestions.save_reasons(conn, page.user["id"], rows, written_at=page.user["read_at"])
            if get_provider().name != "local":
                store.analytics.count_ai_calls(conn, "reasons")
    return written


def prepare(user_id: str, page_size: int, category: str | None) -> tuple[Page, int] | None:
    """Compute the listener's next page and store it for their next request when it has every
    reason it needs. Otherwise return it with the newest suggestion it was computed after, for
    `finish` to have the LLM write what it lacks.

    The page is computed under the listener's page lock (none of their pages is served
    meanwhile), so a complete page is stored in the same transaction."""
    with db_utils.connection() as conn:
        store.pages.begin_page(conn, user_id)
        user = store.users.get_user(conn, user_id)
        if user is None:
            return None
        page = compute(conn, user, page_size, category)
        if not page.unwritten():
            _store(conn, page, page_size, category, {})
            return None
        return page, store.pages.newest_suggestion(conn, user_id)


def finish(page: Page, seen: int, page_size: int, category: str | None) -> int:
    """Have the LLM write the reasons `prepare` left, then store the page, unless a suggestion
    newer than `seen` was served meanwhile (the page would repeat it). Returns how many it wrote."""
    written = write_reasons(page)
    assert page.user is not None  # a computed page
    with db_utils.connection() as conn:
        store.pages.begin_page(conn, page.user["id"])
        _store(conn, page, page_size, category, written, seen)
    return len(written)


def _store(
    conn, page: Page, page_size: int, category: str | None, written: dict[int, str], seen: int | None = None
) -> None:
    left_out = {*INTERNAL_FIELDS, *CURRENT_FIELDS, "cached_reason"}
    items = [
        {
            **{k: v for k, v in item.items() if k not in left_out},
            "reason": item["cached_reason"] or written.get(item["podcast_id"]),
        }
        for item in page.items
    ]
    assert page.user is not None  # a computed page
    store.pages.store_prepared_page(conn, page.user, page_size, category, page.variant.name, items, seen)


def take_prepared(conn, user_id: str, limit: int, category: str | None) -> Page | None:
    """The page prepared for this request, if it still holds: the listener (no event, history or
    profile change) and the collaborative model unchanged since, the same size, category and
    variant, not older than PREPARE_MAX_AGE_SECONDS and every episode still ready. It is taken
    either way: the page served now makes it obsolete."""
    prepared = store.pages.take_prepared_page(conn, user_id)
    if prepared is None:
        return None
    settings = get_settings()
    variant = ranking.assign_variant(user_id, ranking.parse_split(settings.ab_split), settings.ab_salt)
    asked = (limit, category, variant.name)
    holds = (
        prepared["current"]
        and (prepared["page_size"], prepared["category"], prepared["variant"]) == asked
        and prepared["age_seconds"] <= settings.prepare_max_age_seconds
        and len(prepared["items"]) == prepared["size"]
    )
    if not holds:
        return None
    items = prepared["items"]
    for item in items:
        item["cached_reason"] = item.pop("reason")
    return Page(variant, items, prepared=True)


def ask_for_reasons(profile: str, items: list[dict[str, Any]]) -> dict[int, str]:
    """One AI call for the whole page; on failure every item keeps its evidence sentence."""
    if not items:
        return {}
    batch = [
        ReasonItem(i["podcast_id"], i["title"], i["summary"] or "", reasons.sentence(i["evidence"]))
        for i in items
    ]
    try:
        return get_provider().write_reasons(profile, batch)
    except AIProviderError as exc:
        log.warning("reasons fell back to evidence: %s", exc)
        return {}
