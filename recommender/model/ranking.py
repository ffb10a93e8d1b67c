"""Blending, re-ranking and A/B variants, as plain numpy functions.

Candidates come from the HNSW indexes (content; factors) and from co-engagement and EASE. Each gets
one relevance: a weighted blend of its co-engagement score, its factor affinity, its EASE score,
its content similarity to the listener's profile and its popularity (`model.ranker.blend`, from the
features the learned ranker sees too). Re-ranking then
1. lowers episodes close to what the user disliked or skipped,
2. picks by maximal marginal relevance (multiplicative), so near-identical episodes do not fill
   a page,
3. gives a small share of the slots to exploration: random picks among the better half of
   the remaining candidates, so the loop also learns about what it would not have shown.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

import numpy as np

from recommender.model.variants import Variant


@dataclass(frozen=True)
class BlendWeights:
    """The blend's weight of each signal (`model.ranker.blend`), and how much the listener's
    negative engagement counts in co-engagement and EASE (1: as the events weigh, 0: not at all)."""

    collaborative: float
    factors: float
    ease: float
    content: float
    popularity: float
    negatives: float


def rerank(
    relevance: np.ndarray,
    candidates: np.ndarray,
    limit: int,
    variant: Variant,
    negatives: np.ndarray | None = None,
    rng: random.Random | None = None,
) -> list[tuple[int, str]]:
    """Choose `limit` rows of `candidates` (unit vectors) by `relevance`; returns
    (row, "similar"|"explore")."""
    if len(candidates) == 0:
        return []
    rng = rng or random.Random()
    top = relevance.max()
    relevance = relevance / top if top > 0 else relevance  # on the scale of the MMR and dislike terms
    if negatives is not None and len(negatives) and variant.negative_penalty:
        closeness = np.clip((candidates @ negatives.T).max(axis=1), 0, None)
        relevance = relevance - variant.negative_penalty * closeness
    limit = min(limit, len(candidates))
    explore = min(int(limit * variant.exploration + rng.random()), limit - 1, len(candidates) - limit)
    chosen = maximal_marginal_relevance(candidates, relevance, limit - explore, variant.mmr_lambda)
    picks = [(row, "similar") for row in chosen]
    if explore > 0:  # from the better half of the rest, so nothing close to a dislike comes back
        rest = sorted(set(range(len(candidates))) - set(chosen), key=lambda row: -relevance[row])
        picks += [(row, "explore") for row in rng.sample(rest[: max(explore, len(rest) // 2)], explore)]
    return picks


def maximal_marginal_relevance(
    vectors: np.ndarray, relevance: np.ndarray, count: int, mmr_lambda: float
) -> list[int]:
    """Greedy MMR in its multiplicative form: each pick maximizes relevance lowered by a share
    (1-λ)·(similarity to the closest pick so far) of itself.

    A share rather than a fixed amount keeps the trade-off the same at every scale: when one
    co-engaged episode dwarfs the content-only candidates, a close second in the listener's
    topic still beats a far, weaker one."""
    if mmr_lambda >= 1.0:
        return [int(i) for i in np.argsort(-relevance, kind="stable")[:count]]
    chosen: list[int] = []
    redundancy = np.zeros(len(vectors))
    available = np.ones(len(vectors), dtype=bool)
    for _ in range(min(count, len(vectors))):
        score = relevance - (1 - mmr_lambda) * np.abs(relevance) * redundancy
        best = int(np.argmax(np.where(available, score, -np.inf)))
        chosen.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, vectors @ vectors[best])
    return chosen


def blend_weights(variant: Variant, configured: BlendWeights) -> BlendWeights:
    """The weights `variant` ranks with: the configured ones, or content alone for the holdout."""
    return (
        configured
        if variant.use_behaviour
        else BlendWeights(
            collaborative=0.0, factors=0.0, ease=0.0, content=1.0, popularity=0.0, negatives=1.0
        )
    )


def with_text_terms(variant: Variant, weights: BlendWeights) -> Variant:
    """The variant as it re-ranks under `weights`: where they give the text no weight (a fitted
    blend found it predicts nothing), its diversity and its closeness to dislikes do not re-rank
    either; on text that says nothing they only add noise."""
    return variant if weights.content else replace(variant, mmr_lambda=1.0, negative_penalty=0.0)
