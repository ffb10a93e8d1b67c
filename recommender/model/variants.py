"""The arms of the A/B test: how each ranks, and which one a listener is in."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """How one arm of the A/B test ranks."""

    name: str
    use_feedback: bool  # rank by the learned profile (else: history text + listens only)
    use_behaviour: bool  # blend in co-engagement and popularity (else: content alone)
    mmr_lambda: float  # 1.0 ranks by relevance alone; lower values favour diversity
    exploration: float  # expected share of the page given to exploration (`loop`, `blend`: EXPLORATION_SHARE)
    negative_penalty: float  # how much closeness to a disliked/skipped episode costs
    use_ranker: bool = False  # rank with the learned ranker once one is adopted (else: the hand-set blend)


VARIANTS = {
    v.name: v
    for v in (
        Variant(
            "loop",
            use_feedback=True,
            use_behaviour=True,
            use_ranker=True,
            mmr_lambda=0.9,
            exploration=0.1,
            negative_penalty=0.5,
        ),
        # The loop with the hand-set blend: what the learned ranker is measured against.
        Variant(
            "blend",
            use_feedback=True,
            use_behaviour=True,
            use_ranker=False,
            mmr_lambda=0.9,
            exploration=0.1,
            negative_penalty=0.5,
        ),
        # The reference design: history similarity only, feedback stored but never used.
        Variant(
            "history_only",
            use_feedback=False,
            use_behaviour=False,
            use_ranker=False,
            mmr_lambda=1.0,
            exploration=0.0,
            negative_penalty=0.0,
        ),
    )
}


def parse_split(text: str) -> list[tuple[str, float]]:
    """`"loop:90,history_only:10"` → [("loop", 90.0), ("history_only", 10.0)]."""
    split = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition(":")
        if name not in VARIANTS:
            raise ValueError(f"unknown variant {name!r} in AB_SPLIT; known: {', '.join(VARIANTS)}")
        split.append((name, float(weight or 1)))
    if not split or sum(w for _, w in split) <= 0:
        raise ValueError("AB_SPLIT needs at least one variant with a positive weight")
    return split


def assign_variant(user_id: str, split: list[tuple[str, float]], salt: str) -> Variant:
    """The same user always lands in the same variant for a given split and salt."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(w for _, w in split)
    for name, weight in split:
        if point < weight:
            return VARIANTS[name]
        point -= weight
    return VARIANTS[split[-1][0]]
