"""Which candidate generators to trust, learned by each deployment from its own data.

The blend (`ranker.blend`) weighs five signals: co-engagement, factor affinity, EASE, content
similarity and popularity. Which of them predicts what listeners enjoy depends on the data (on
Last.fm the factors carry most of it, on explicit film ratings item neighbours do, in a new
catalogue with few listeners the text does), and no deployment knows in advance which it has; nor
how much what listeners disliked or skipped should count against its neighbours. So
the weights are fitted on pages whose outcome the models never saw: the bootstrap's pages of
held-out episodes (`service/bootstrap.py`) and the logged pages listeners reacted to. Every point
of `GRID` (the signals alone among them) is scored by NDCG@5 on those pages; the simplest of the
best (`_choose`) ranks if that choice also beats the configured weights out of sample, by
cross-validation over listeners (each fold is scored by the point the other folds chose), by more
than twice the standard error of its per-page gain. Pure: arrays in, weights out.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from recommender.model import ndcg
from recommender.model.ranker import FEATURES, blended_terms, coefficients, unit_hash
from recommender.model.ranking import BlendWeights

# The blend's signals (BlendWeights' fields) and the feature each is read from.
SIGNALS = {
    "collaborative": "co_engagement",
    "factors": "factors",
    "ease": "ease",
    "content": "content",
    "popularity": "popularity",
}
# Co-engagement, factors and EASE are over the page's best (0 to 1), content a cosine, popularity a prior in
# [0, 1): each signal's weights span "off" to "leads".
GRID = {
    "collaborative": (0.0, 0.1, 0.3, 1.0),
    "factors": (0.0, 0.1, 0.3, 1.0),
    "ease": (0.0, 0.1, 0.3, 1.0),
    "content": (0.0, 0.03, 0.1, 0.3, 1.0),
    "popularity": (0.0, 0.02, 0.1, 0.3),
    # How much negative engagement counts (BlendWeights.negatives): as the events weigh, less, not at
    # all, or even for (on explicit ratings a film rated low was still watched, and says so).
    "negatives": (1.0, 0.3, 0.0, -0.3),
}
DEFAULT_NEGATIVES = 1.0  # the events' own weights: a point that changes them is one signal more
FOLDS = 5
MIN_PAGES = 20  # fewer pages than this tell too little: the configured blend ranks


@dataclass(frozen=True)
class FittedBlend:
    """The weights fitted on a deployment's pages, and the evidence for them."""

    weights: BlendWeights
    adopted: bool  # it beat the configured blend out of sample, by more than chance would: it ranks
    validation_ndcg: float | None  # cross-validated: each fold scored by the point the other folds chose
    configured_ndcg: float  # the configured blend's, on the same pages
    components_ndcg: dict[str, float]  # each signal alone
    pages: int

    def stored(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> FittedBlend:
        return cls(**{**stored, "weights": BlendWeights(**stored["weights"])})


def fit(
    x: np.ndarray, labels: np.ndarray, pages: np.ndarray, listeners: Sequence[str], configured: BlendWeights
) -> FittedBlend | None:
    """The best point of `GRID` on the pages (rows of `x`, a page's rows together, `labels` 1 where
    enjoyed); None without a page that tells a hit from a miss."""
    informative = ndcg.informative(labels, pages)
    laid = ndcg.Pages.of(labels[informative], pages[informative])
    if not len(laid):
        return None
    rows = x[informative]
    terms = blended_terms(rows)
    points = np.array([p for p in itertools.product(*GRID.values()) if any(p[: len(SIGNALS)])])
    per_page = np.vstack(
        [laid.ndcg(terms @ coefficients(BlendWeights(*p))) for p in points]
    )  # (points, pages)
    baseline = laid.ndcg(terms @ coefficients(configured))
    who = [listeners[i] for i in np.flatnonzero(informative)[laid.first_rows]]
    folds = np.array([int(unit_hash(f"fold:{w}") * FOLDS) for w in who])
    out_of_sample = _cross_validated(points, per_page, folds)
    best = points[_choose(points, per_page)]
    alone = {name: laid.ndcg(rows[:, FEATURES.index(feature)]).mean() for name, feature in SIGNALS.items()}
    return FittedBlend(
        BlendWeights(*(float(w) for w in best)),
        out_of_sample is not None and len(laid) >= MIN_PAGES and _beats(out_of_sample, baseline),
        None if out_of_sample is None else _rounded(out_of_sample.mean()),
        _rounded(baseline.mean()),
        {name: _rounded(value) for name, value in alone.items()},
        len(laid),
    )


def _choose(points: np.ndarray, per_page: np.ndarray) -> int:
    """The simplest point (fewest signals) among those within a standard error of the best one on
    these pages, the better of those first: many points rank a few dozen pages alike, and the one
    that leans on fewer signals is the one the next pages are likeliest to agree with."""
    means = per_page.mean(axis=1)
    best = int(np.argmax(means))
    errors = (per_page - per_page[best]).std(axis=1) / np.sqrt(per_page.shape[1])
    close = np.flatnonzero(means >= means[best] - errors)
    signals = np.count_nonzero(points[:, : len(SIGNALS)], axis=1) + (points[:, -1] != DEFAULT_NEGATIVES)
    return int(min(close, key=lambda i: (signals[i], -means[i])))


def _cross_validated(points: np.ndarray, per_page: np.ndarray, folds: np.ndarray) -> np.ndarray | None:
    """Each page's NDCG under the point chosen on the other folds' pages; None with one fold only."""
    if len(np.unique(folds)) < 2:
        return None
    scored = np.empty(per_page.shape[1])
    for fold in np.unique(folds):
        inside = folds == fold
        scored[inside] = per_page[_choose(points, per_page[:, ~inside]), inside]
    return scored


def _beats(scored: np.ndarray, baseline: np.ndarray) -> bool:
    """Whether the per-page gain is more than twice its standard error (as for the ranker)."""
    gain = scored - baseline
    return bool(gain.mean() > 2 * gain.std(ddof=1) / np.sqrt(len(gain)))


def _rounded(value: float) -> float:
    return round(float(value), 4)
