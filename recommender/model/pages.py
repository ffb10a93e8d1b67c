"""A page of recommendations, as pure functions: candidates in, the chosen items out, each with the
evidence that ranked it and the reason written for it earlier while that evidence still holds."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from recommender.model import ranker, ranking, reasons
from recommender.model.ranker import Ranker
from recommender.model.reasons import Evidence
from recommender.model.variants import Variant


@dataclass(frozen=True, eq=False)
class Candidate:
    """An episode that may be recommended, with the signals that rank it."""

    podcast_id: int
    title: str
    summary: str | None
    category: str | None
    embedding: np.ndarray | None = None
    similarity: float | None = None  # cosine to the listener's profile (None: not a content match)
    popularity: float = 0.0  # the prior in [0, 1)
    listeners: int = 0  # who enjoyed it lately
    collaborative: float = 0.0  # co-engagement with the listener's episodes
    ease: float = 0.0  # EASE's score from the listener's episodes (`model/ease.py`)
    collaborative_negative: float = 0.0  # the parts of those two from the episodes they disliked or skipped
    ease_negative: float = 0.0
    affinity: float | None = None  # inner product of its factors with the listener's (None: no factors)
    age_days: float | None = None  # since it was published (None: unknown)
    because_of: int | None = None  # the listener's episode that contributed most to it
    written_reason: str | None = None  # written for this listener earlier ...
    written_for: str | None = None  # ... from evidence with this key


@dataclass(frozen=True, eq=False)
class Engagement:
    """One of the listener's episodes and their engagement with it, in [-1, 1], as the models weigh
    it (`model.events.signal_engagement`)."""

    podcast_id: int
    weight: float
    title: str
    embedding: np.ndarray | None = None  # for the strongest few only
    category: str | None = None
    net: float | None = None  # their net engagement itself, where it is known (else: the weight)

    @property
    def enjoyed(self) -> bool:
        """Whether they enjoyed it (a positive net), whatever the signal makes of it."""
        return (self.weight if self.net is None else self.net) > 0


@dataclass(frozen=True, eq=False)
class Item:
    """A recommended episode: what ranked it, the evidence why, and a reason written from that
    evidence, if one was (it stays valid while the evidence holds)."""

    podcast_id: int
    title: str
    summary: str | None
    category: str | None
    strategy: str  # similar | collaborative | explore | popular
    similarity: float | None
    score: float | None
    evidence: Evidence
    reason: str | None = None
    features: list[float] | None = None  # what the ranker saw (`model/ranker.py`), logged when served

    def answer(self, rank: int, reason: str, source: str, suggestion_id: int) -> dict[str, Any]:
        """The item as the API answers it."""
        answer = asdict(self) | {"rank": rank, "reason": reason, "reason_source": source}
        del answer["features"]
        return answer | {"suggestion_id": suggestion_id}

    def stored(self) -> dict[str, Any]:
        """The item as a prepared page keeps it; title, summary and category are read when served."""
        return {
            "podcast_id": self.podcast_id,
            "similarity": self.similarity,
            "strategy": self.strategy,
            "score": self.score,
            "evidence": self.evidence,
            "reason": self.reason,
            "features": self.features,
        }

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> Item:
        """A prepared page's item, with its episode's title, summary and category as they are now."""
        return cls(**{name: stored.get(name) for name in cls.__dataclass_fields__})


class Chosen(NamedTuple):
    candidate: Candidate
    strategy: str
    score: float | None  # its relevance
    features: list[float] | None = None  # what the ranker saw, exploration flagged


def choose(
    candidates: list[Candidate],
    recent: set[int],
    limit: int,
    variant: Variant,
    weights: ranking.BlendWeights,
    negatives: np.ndarray | None,
    rng: random.Random,
    *,
    learned: Ranker | None = None,
    positives: Sequence[Engagement] = (),
) -> list[Chosen]:
    """Score (by the `learned` ranker, else the blend) and re-rank; episodes suggested within the
    window are used only when fresh ones run out."""
    fresh = [c for c in candidates if c.podcast_id not in recent]
    pool = fresh if len(fresh) >= limit else fresh + [c for c in candidates if c.podcast_id in recent]
    vectors = np.vstack([c.embedding for c in pool])
    x = ranker.features(signals(pool, vectors, negatives, positives))
    blended, behaviour_led = ranker.blend(x, weights)
    relevance = blended if learned is None else learned.relevance(x)
    chosen = []
    for row, strategy in ranking.rerank(relevance, vectors, limit, variant, negatives, rng):
        logged = x[row].copy()
        logged[ranker.EXPLORATION] = strategy == "explore"
        chosen.append(
            Chosen(
                pool[row],
                "collaborative" if strategy == "similar" and behaviour_led[row] else strategy,
                round(float(relevance[row]), 4),
                [round(float(v), 5) for v in logged],
            )
        )
    return chosen


def signals(
    pool: list[Candidate], vectors: np.ndarray, negatives: np.ndarray | None, positives: Sequence[Engagement]
) -> ranker.Signals:
    """What the ranker's features of `pool` are made of."""
    enjoyed = [p.category for p in positives if p.weight > 0]
    shares = {category: count / len(enjoyed) for category, count in Counter(enjoyed).items() if category}
    closeness = (
        (vectors @ negatives.T).max(axis=1)
        if negatives is not None and len(negatives)
        else np.zeros(len(pool))
    )
    return ranker.Signals(
        co_engagement=np.array([c.collaborative for c in pool]),
        co_engagement_negative=np.array([c.collaborative_negative for c in pool]),
        ease=np.array([c.ease for c in pool]),
        ease_negative=np.array([c.ease_negative for c in pool]),
        affinity=np.array([np.nan if c.affinity is None else c.affinity for c in pool]),
        similarity=np.array([c.similarity or 0.0 for c in pool]),
        popularity=np.array([c.popularity for c in pool]),
        disliked_closeness=closeness,
        category_share=np.array([shares.get(c.category or "", 0.0) for c in pool]),
        age_days=np.array([np.nan if c.age_days is None else c.age_days for c in pool]),
    )


def popular(candidates: list[Candidate], recent: set[int], limit: int) -> list[Chosen]:
    """The popular page of a listener with nothing to go on: fresh episodes first, in order."""
    ordered = sorted(candidates, key=lambda c: c.podcast_id in recent)  # stable
    return [Chosen(c, "popular", None) for c in ordered[:limit]]


def explain(chosen: list[Chosen], positives: list[Engagement], history_words: set[str]) -> list[Item]:
    """The chosen candidates as items, each with its evidence and the reason written from that
    evidence earlier (none where the evidence changed since: it would no longer be true)."""
    items = []
    for candidate, strategy, score, features in chosen:
        evidence = reasons.evidence(candidate, positives, history_words)
        still_true = candidate.written_for == reasons.evidence_key(evidence)
        similarity = None if candidate.similarity is None else round(candidate.similarity, 4)
        items.append(
            Item(
                candidate.podcast_id,
                candidate.title,
                candidate.summary,
                candidate.category,
                strategy,
                similarity,
                score,
                evidence,
                candidate.written_reason if still_true else None,
                features,
            )
        )
    return items
