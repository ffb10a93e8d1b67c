"""A page of recommendations, as pure functions: candidates in, the chosen items out, each with the
evidence that ranked it and the reason written for it earlier while that evidence still holds."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from recommender.model import ranking, reasons
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
    affinity: float | None = None  # inner product of its factors with the listener's (None: no factors)
    because_of: int | None = None  # the listener's episode that contributed most to it
    written_reason: str | None = None  # written for this listener earlier ...
    written_for: str | None = None  # ... from evidence with this key


@dataclass(frozen=True, eq=False)
class Engagement:
    """One of the listener's episodes and their net engagement with it, in [-1, 1]."""

    podcast_id: int
    weight: float
    title: str
    embedding: np.ndarray | None = None  # for the strongest few only


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

    def answer(self, rank: int, reason: str, source: str, suggestion_id: int) -> dict[str, Any]:
        """The item as the API answers it."""
        answer = asdict(self) | {"rank": rank, "reason": reason, "reason_source": source}
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
        }

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> Item:
        """A prepared page's item, with its episode's title, summary and category as they are now."""
        return cls(**{name: stored.get(name) for name in cls.__dataclass_fields__})


Chosen = tuple[Candidate, str, float | None]  # a candidate, its strategy and its blended score


def choose(
    candidates: list[Candidate],
    recent: set[int],
    limit: int,
    variant: Variant,
    weights: ranking.BlendWeights,
    negatives: np.ndarray | None,
    rng: random.Random,
) -> list[Chosen]:
    """Blend and re-rank; episodes suggested within the window are used only when fresh ones
    run out."""
    fresh = [c for c in candidates if c.podcast_id not in recent]
    pool = fresh if len(fresh) >= limit else fresh + [c for c in candidates if c.podcast_id in recent]
    relevance, behaviour_led = ranking.blend(
        np.array([c.collaborative for c in pool]),
        np.array([c.affinity or 0.0 for c in pool]),
        np.array([c.similarity or 0.0 for c in pool]),
        np.array([c.popularity for c in pool]),
        weights,
    )
    vectors = np.vstack([c.embedding for c in pool])
    return [
        (
            pool[row],
            "collaborative" if strategy == "similar" and behaviour_led[row] else strategy,
            round(float(relevance[row]), 4),
        )
        for row, strategy in ranking.rerank(relevance, vectors, limit, variant, negatives, rng)
    ]


def popular(candidates: list[Candidate], recent: set[int], limit: int) -> list[Chosen]:
    """The popular page of a listener with nothing to go on: fresh episodes first, in order."""
    ordered = sorted(candidates, key=lambda c: c.podcast_id in recent)  # stable
    return [(c, "popular", None) for c in ordered[:limit]]


def explain(chosen: list[Chosen], positives: list[Engagement], history_words: set[str]) -> list[Item]:
    """The chosen candidates as items, each with its evidence and the reason written from that
    evidence earlier (none where the evidence changed since: it would no longer be true)."""
    items = []
    for candidate, strategy, score in chosen:
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
            )
        )
    return items
