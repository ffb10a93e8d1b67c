"""A listener's page, computed: candidates by content (the HNSW index), by co-engagement and by
the listener's factors (folded in now, one inner-product probe) read from the store, chosen by
the model (`model/pages.py`), each with its evidence; its missing
reasons written by the LLM; and the page kept, prepared, for the listener's next request.

Computing reads only: the same state gives the same page, whether a request computes it or the
page writer (`page_writer.py`) computes it ahead.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

import db_utils
from config import get_settings
from recommender import store
from recommender.ai import get_provider
from recommender.ai.interface import AIProviderError, ReasonItem
from recommender.ai.text import content_words
from recommender.model import factors, pages, ranking, reasons
from recommender.model.pages import Candidate, Chosen, Engagement, Item
from recommender.model.ranker import Ranker
from recommender.model.variants import Variant, assign_variant, parse_split
from recommender.store.podcasts import Filters
from recommender.store.users import User

log = logging.getLogger(__name__)

CANDIDATES_PER_SLOT = 4  # candidates fetched per requested item, for re-ranking to choose from
MIN_CANDIDATES = 20


@dataclass(frozen=True, eq=False)
class Page:
    variant: Variant
    items: list[Item]  # each with its evidence and the valid written reason, if any
    user: User | None = None  # what a computed page was computed from ...
    positives: list[Engagement] = field(default_factory=list)  # ... and the episodes they enjoyed
    prepared: bool = False  # computed ahead and served as stored: its reasons are all it has

    def unwritten(self) -> list[Item]:
        """The items an LLM could still write a reason for. Offline there is none: the evidence
        sentences are the reasons, served as such (`fallback`), never as if written."""
        if get_provider().name == "local":
            return []
        return [item for item in self.items if item.reason is None]


def configured_blend() -> ranking.BlendWeights:
    """The hand-set blend, as configured (`BLEND_*`)."""
    settings = get_settings()
    return ranking.BlendWeights(
        collaborative=settings.blend_collaborative,
        factors=settings.blend_factors,
        ease=settings.blend_ease,
        content=settings.blend_content,
        popularity=settings.blend_popularity,
        negatives=settings.blend_negatives,
    )


def variant_of(user_id: str) -> Variant:
    """The listener's arm of the A/B test, exploring as configured if it explores at all."""
    settings = get_settings()
    variant = assign_variant(user_id, parse_split(settings.ab_split), settings.ab_salt)
    return replace(variant, exploration=settings.exploration_share) if variant.exploration else variant


def compute(conn, user: User, limit: int, filters: Filters) -> Page:
    """Candidates by content and by co-engagement, blended with popularity, re-ranked for the
    user's variant, each with its evidence. Users with nothing to go on get popular, then new,
    episodes."""
    settings = get_settings()
    variant = variant_of(user.id)
    profile = user.embedding if variant.use_feedback else user.history_profile
    excluded, recent = store.candidates.exclusions(conn, user.id, settings.resuggest_window_hours)
    mine = store.collaborative.listener_items(conn, user.id)
    wanted = max(limit * CANDIDATES_PER_SLOT, MIN_CANDIDATES) + len(recent)
    behaviour = mine if variant.use_behaviour else []
    candidates = gather(conn, user, profile, behaviour, taste(conn, behaviour), wanted, excluded, filters)
    chosen: list[Chosen]
    if candidates:
        negatives = store.candidates.negative_examples(conn, user.id) if variant.use_feedback else None
        # Exploration is random but stable for a user within a day, so the page prepared ahead
        # and the page then requested make the same picks.
        rng = random.Random(f"{user.id}:{datetime.now(UTC).date()}")
        weights, learned = learned_ranking(conn) if variant.use_ranker else (configured_blend(), None)
        weights = ranking.blend_weights(variant, weights)
        variant = ranking.with_text_terms(variant, weights)
        chosen = pages.choose(
            candidates, recent, limit, variant, weights, negatives, rng, learned=learned, positives=mine
        )
    else:
        popular = store.collaborative.popular(conn, limit + len(recent), excluded=excluded, filters=filters)
        chosen = with_written_reasons(conn, user, pages.popular(popular, recent, limit))
    positives = [m for m in mine if m.weight > 0]
    history_words = set(content_words(f"{user.listening_history or ''} {user.interest_profile or ''}"))
    return Page(variant, pages.explain(chosen, positives, history_words), user, positives)


_learned: dict[int, tuple[ranking.BlendWeights | None, Ranker | None]] = {}  # the newest, loaded once


def learned_ranking(conn) -> tuple[ranking.BlendWeights, Ranker | None]:
    """What the loop ranks with: the blend fitted for this deployment if it beat the configured
    one out of sample (else the configured one), and the newest trained ranker if it was adopted
    (it beat that blend on held-out listeners)."""
    newest = store.ranker.newest(conn)
    if newest is None:
        return configured_blend(), None
    version, adopted = newest
    if version not in _learned:  # read once per training, not per request
        _learned.clear()
        fitted = store.ranker.fitted_blend(conn, version)
        weights = fitted.weights if fitted is not None and fitted.adopted else None
        _learned[version] = weights, store.ranker.model(conn, version) if adopted else None
    weights, ranker = _learned[version]
    return weights or configured_blend(), ranker


def taste(conn, mine: list[Engagement]) -> np.ndarray | None:
    """The listener's factors, folded in from their engagement as it is now (`model/factors.py`);
    None without a factor model or without a positive engagement it knows."""
    constants = store.factors.fold_in_constants(conn) if mine else None
    if constants is None:
        return None
    stored = store.factors.of_episodes(conn, [m.podcast_id for m in mine])
    known = [m for m in mine if m.podcast_id in stored]
    if not known:
        return None
    return factors.fold_in(
        constants.gram,
        constants.regularization,
        constants.alpha,
        np.vstack([stored[m.podcast_id] for m in known]),
        np.array([m.weight for m in known]),
    )


def gather(
    conn,
    user: User,
    profile: np.ndarray | None,
    mine: list[Engagement],
    taste: np.ndarray | None,
    count: int,
    excluded: list[int],
    filters: Filters,
) -> list[Candidate]:
    """Content neighbours of the profile, behaviour neighbours of the listener's episodes and the
    best matches of their factors (`taste`), each with its co-engagement score (0 when none) and
    its EASE score, the episode of theirs behind them, and its factor affinity."""
    scope = {"user_id": user.id, "taste": taste, "reasons_valid_from": user.reasons_valid_from}
    ef_search = get_settings().hnsw_ef_search
    content = []
    if profile is not None:
        content = store.candidates.candidate_podcasts(
            conn, profile, count, excluded=excluded, filters=filters, ef_search=ef_search, **scope
        )
    known = {c.podcast_id for c in content}
    scores = store.collaborative.neighbour_scores(
        conn, mine, count, include=sorted(known), excluded=excluded, filters=filters
    )
    matches = []
    if taste is not None:
        matches = store.factors.best_matches(
            conn, taste, count, excluded=excluded, filters=filters, ef_search=ef_search
        )
    more = [pid for pid in dict.fromkeys([*scores, *matches]) if pid not in known]
    extra = store.candidates.candidates_by_id(conn, more, profile, **scope)
    return [
        replace(
            c,
            collaborative=near.co_engagement,
            collaborative_negative=near.co_engagement_negative,
            ease=near.ease,
            ease_negative=near.ease_negative,
            because_of=near.because_of,
        )
        if (near := scores.get(c.podcast_id))
        else c
        for c in content + extra
    ]


def with_written_reasons(conn, user: User, chosen: list[Chosen]) -> list[Chosen]:
    """The chosen candidates with the reasons written for this listener since their history."""
    ids = [c.candidate.podcast_id for c in chosen]
    written = store.suggestions.written_reasons(conn, user.id, ids, user.reasons_valid_from)
    with_reasons: list[Chosen] = []
    for chosen_one in chosen:
        candidate = chosen_one.candidate
        if candidate.podcast_id in written:
            reason, evidence = written[candidate.podcast_id]
            candidate = replace(candidate, written_reason=reason, written_for=evidence)
        with_reasons.append(chosen_one._replace(candidate=candidate))
    return with_reasons


def write_reasons(page: Page) -> dict[int, str]:
    """One LLM call for the page's items without a valid reason; stored for later pages too.
    Returns the reasons written by podcast id (none when the AI service failed)."""
    unwritten = page.unwritten()
    if not unwritten:
        return {}
    assert page.user is not None  # reasons are written for computed pages
    profile = reasons.listener_profile(
        page.user.interest_profile, page.user.listening_history, page.positives
    )
    batch = [
        ReasonItem(i.podcast_id, i.title, i.summary or "", reasons.sentence(i.evidence, i.podcast_id))
        for i in unwritten
    ]
    try:
        written = get_provider().write_reasons(profile, batch)
    except AIProviderError as exc:
        log.warning("reasons fell back to evidence: %s", exc)
        return {}
    if written:
        keys = {item.podcast_id: reasons.evidence_key(item.evidence) for item in unwritten}
        rows = [(pid, keys[pid], reason) for pid, reason in written.items()]
        for attempt in db_utils.transactions():
            with attempt as conn:
                store.pages.commit_asynchronously(conn)
                # Dated when the page was read: a profile that changed meanwhile makes them stale.
                store.suggestions.save_reasons(conn, page.user.id, rows, written_at=page.user.read_at)
                if get_provider().name != "local":
                    store.analytics.count_ai_calls(conn, "reasons")
    return written


def keep_prepared(
    conn, page: Page, page_size: int, category: str | None, written: dict[int, str], seen: int | None = None
) -> bool:
    """Store the page, with the reasons `written` for it, for the listener's next request (see
    `store.pages.store_prepared` for when it is not). Call after `store.pages.begin_page`."""
    assert page.user is not None  # a computed page
    items = [
        replace(item, reason=item.reason or written.get(item.podcast_id)).stored() for item in page.items
    ]
    return store.pages.store_prepared(conn, page.user, page_size, category, page.variant.name, items, seen)
