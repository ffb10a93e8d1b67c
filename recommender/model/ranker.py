"""A ranker learned from the service's own log: what each listener was shown (with the features it
was ranked by, logged at that moment) and what they did with it.

Features describe a candidate against the other candidates of its page, so they mean the same
for every listener and every catalogue (`features`). Training (`train`) fits two models on the
pages listeners reacted to, a logistic regression and LightGBM's lambdarank, and scores each,
and the blend that ranks without it (the weights fitted for the deployment, `model/fusion.py`, or
the hand-set ones), by NDCG@5 on the pages of listeners held out; the better model is adopted
only when it beats the blend there by more than chance would (`Trained.adopted`: the mean of
its per-page gains over twice their standard error), so a deployment with too little or too odd
a log keeps the blend. Pure: arrays in, a model out; storage is `store/ranker.py`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from recommender.model import ndcg
from recommender.model.ranking import BlendWeights

FEATURES = (
    "co_engagement",  # co-engagement score over the page's best
    "co_engagement_rank",  # 1 / (1 + rank) among candidates with co-engagement, else 0
    "factors",  # factor affinity over the page's best
    "factors_rank",  # 1 / (1 + rank) by factor affinity, else 0
    "ease",  # EASE score over the page's best
    "ease_rank",  # 1 / (1 + rank) among candidates with an EASE score, else 0
    "co_engagement_negative",  # the part of co-engagement from disliked or skipped episodes, same scale
    "ease_negative",  # the same for EASE
    "content",  # cosine similarity to the listener's profile
    "popularity",  # the popularity prior in [0, 1)
    "disliked_closeness",  # cosine to the closest episode the listener disliked or skipped
    "category_share",  # share of the listener's enjoyed episodes in its category
    "recency",  # 0.5 ** (days since published / 30); 0 when unknown
    "exploration",  # 1 for a logged exploration pick (always 0 when ranking)
)
EXPLORATION = FEATURES.index("exploration")
VALIDATION_SHARE = 0.2  # of listeners, by hash: their pages score the models
# Held-out interactions, for the ranker to learn from before there is a log (service/bootstrap.py):
# of a fixed share of listeners, a fixed share of the episodes they engaged with, both by hash, is
# never seen by the collaborative model (store.collaborative.HELD_OUT), so their recomputed pages
# can ask the ranker to find them without the models having seen them.
BOOTSTRAP_LISTENER_SHARE = 0.1
HIDDEN_SHARE = 0.2


@dataclass(frozen=True, eq=False)
class Signals:
    """What the features of a page's candidates are computed from, one entry per candidate."""

    co_engagement: np.ndarray
    co_engagement_negative: np.ndarray  # the part of it from the listener's negative engagement
    ease: np.ndarray
    ease_negative: np.ndarray
    affinity: np.ndarray  # NaN where a candidate has no factors
    similarity: np.ndarray
    popularity: np.ndarray
    disliked_closeness: np.ndarray
    category_share: np.ndarray
    age_days: np.ndarray  # NaN where unknown


def features(signals: Signals) -> np.ndarray:
    """The (candidates x FEATURES) matrix of a page."""
    affinity = np.nan_to_num(signals.affinity, nan=0.0)
    known = ~np.isnan(signals.age_days)
    recency = np.where(known, 0.5 ** (np.nan_to_num(signals.age_days, nan=0.0).clip(0) / 30.0), 0.0)
    return np.column_stack(
        [
            _over_best(signals.co_engagement),
            _inverse_rank(signals.co_engagement),
            _over_best(affinity),
            _inverse_rank(np.where(np.isnan(signals.affinity), 0.0, affinity - affinity.min() + 1e-9)),
            _over_best(signals.ease),
            _inverse_rank(signals.ease),
            _over_best_of(signals.co_engagement_negative, signals.co_engagement),
            _over_best_of(signals.ease_negative, signals.ease),
            signals.similarity,
            signals.popularity,
            signals.disliked_closeness.clip(0),
            signals.category_share,
            recency,
            np.zeros(len(affinity)),
        ]
    ).astype(np.float32)


# The features the blend is made of; with `coefficients`, its relevance is their inner product.
BLENDED = (
    "co_engagement",
    "co_engagement_negative",
    "factors",
    "ease",
    "ease_negative",
    "content",
    "popularity",
)
BEHAVIOUR = slice(0, 5)  # of BLENDED: what listeners do, rather than what the text says


def coefficients(weights: BlendWeights) -> np.ndarray:
    """Each of BLENDED's coefficient: a signal's weight, and for the negative parts of
    co-engagement and EASE that weight times (`weights.negatives` - 1), so they count as much as
    `weights.negatives` says (1: as the events weigh, 0: not at all)."""
    discount = weights.negatives - 1.0
    return np.array(
        [
            weights.collaborative,
            weights.collaborative * discount,
            weights.factors,
            weights.ease,
            weights.ease * discount,
            weights.content,
            weights.popularity,
        ]
    )


def blended_terms(x: np.ndarray) -> np.ndarray:
    """The columns of the features `x` the blend is made of (BLENDED)."""
    return x[:, [FEATURES.index(name) for name in BLENDED]].astype(np.float64)


def blend(x: np.ndarray, weights: BlendWeights) -> tuple[np.ndarray, np.ndarray]:
    """The blend's relevance of each candidate (rows of the features `x`), and whether behaviour
    (co-engagement, factors and EASE, rather than content) carried it.

    Co-engagement, factor affinity and EASE are each over the page's best, so their weights mean
    the same for every listener; popularity is already a prior in [0, 1)."""
    terms, c = blended_terms(x), coefficients(weights)
    behaviour = terms[:, BEHAVIOUR] @ c[BEHAVIOUR]
    content = terms[:, BLENDED.index("content")] * weights.content
    return terms @ c, behaviour > content


@dataclass(frozen=True, eq=False)
class Ranker:
    """A trained model that scores candidates from their features."""

    kind: str  # "logistic" | "lambdarank"
    model: str  # logistic: JSON of mean, scale and weights; lambdarank: LightGBM's model text

    @cached_property
    def fitted(self) -> Any:
        """The model read from its text, once per Ranker (a request reuses the cached one)."""
        if self.kind == "logistic":
            return json.loads(self.model)
        import lightgbm

        return lightgbm.Booster(model_str=self.model)

    def scores(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "logistic":
            z = (x - np.array(self.fitted["mean"])) / np.array(self.fitted["scale"])
            return z @ np.array(self.fitted["weights"]) + self.fitted["bias"]
        return self.fitted.predict(x)

    def relevance(self, x: np.ndarray) -> np.ndarray:
        """Scores as relevance in (0, 1], the best 1: each a likelihood ratio to the best."""
        scores = self.scores(x)
        return np.exp(scores - scores.max())


@dataclass(frozen=True, eq=False)
class Trained:
    """The outcome of a training: the better model and how each did on the held-out listeners."""

    ranker: Ranker
    rows: int
    pages: int
    validation_ndcg: float  # of the chosen model
    blend_ndcg: float  # of the blend it competes with (`weights`), on the same pages
    candidates_ndcg: dict[str, float]  # of every model fitted
    importances: dict[str, float]  # share of each feature in the chosen model
    adopted: bool  # it beat the blend by more than twice the standard error of its per-page gain


def train(
    x: np.ndarray, labels: np.ndarray, pages: np.ndarray, listeners: Sequence[str], weights: BlendWeights
) -> Trained | None:
    """Fit on the pages of most listeners, score on the rest (by hash of the listener). Rows are
    shown items; `pages` numbers each row's page (rows of a page together); `labels` 1 where the
    listener enjoyed the item. None when either side has no page with both outcomes."""
    held_out = np.array([_held_out(listener) for listener in listeners], dtype=bool)
    informative = ndcg.informative(labels, pages)
    fit_rows, check_rows = informative & ~held_out, informative & held_out
    if not fit_rows.any() or not check_rows.any():
        return None
    check_x, check = x[check_rows], ndcg.Pages.of(labels[check_rows], pages[check_rows])
    fitted = [_logistic(x[fit_rows], labels[fit_rows])]
    lambdarank = _lambdarank(x[fit_rows], labels[fit_rows], pages[fit_rows])
    if lambdarank is not None:
        fitted.append(lambdarank)
    per_page = {ranker.kind: check.ndcg(ranker.scores(check_x)) for ranker in fitted}
    best = max(fitted, key=lambda ranker: per_page[ranker.kind].mean())
    blended = check.ndcg(blend(check_x, weights)[0])
    gain = per_page[best.kind] - blended
    return Trained(
        best,
        int(fit_rows.sum()),
        len(np.unique(pages[fit_rows])),
        _mean(per_page[best.kind]),
        _mean(blended),
        {kind: _mean(values) for kind, values in per_page.items()},
        _importances(best),
        bool(gain.mean() > 2 * gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else False,
    )


def _mean(values: np.ndarray) -> float:
    return round(float(values.mean()), 4) if len(values) else 0.0


def _logistic(x: np.ndarray, labels: np.ndarray, l2: float = 1.0) -> Ranker:
    """L2-regularised logistic regression on standardised features, by Newton's method."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.column_stack([(x - mean) / scale, np.ones(len(x))])
    w = np.zeros(z.shape[1])
    penalty = np.diag([l2] * (z.shape[1] - 1) + [0.0])
    for _ in range(25):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        gradient = z.T @ (p - labels) + penalty @ w
        hessian = (z.T * (p * (1 - p))) @ z + penalty + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    model = {"mean": mean.tolist(), "scale": scale.tolist(), "weights": w[:-1].tolist(), "bias": float(w[-1])}
    return Ranker("logistic", json.dumps(model))


def _lambdarank(x: np.ndarray, labels: np.ndarray, pages: np.ndarray) -> Ranker | None:
    """LightGBM's lambdarank on the pages; None where LightGBM cannot load (no OpenMP runtime)."""
    try:
        import lightgbm
    except (ImportError, OSError):
        return None
    _, sizes = np.unique(pages, return_counts=True)  # rows of a page are together, pages in order
    params = {
        "objective": "lambdarank",
        "num_leaves": 7,
        "min_data_in_leaf": 20,
        "learning_rate": 0.05,
        "num_threads": 1,
        "verbose": -1,
        "seed": 0,
    }
    data = lightgbm.Dataset(x, labels, group=sizes, feature_name=list(FEATURES))
    booster = lightgbm.train(params, data, num_boost_round=100)
    return Ranker("lambdarank", booster.model_to_string())


def _importances(ranker: Ranker) -> dict[str, float]:
    """Each feature's share: |standardised weight| (logistic) or total gain (lambdarank)."""
    if ranker.kind == "logistic":
        raw = np.abs(np.array(ranker.fitted["weights"]))
    else:
        raw = np.asarray(ranker.fitted.feature_importance("gain"), dtype=float)
    total = raw.sum() or 1.0
    return {name: round(float(v / total), 4) for name, v in zip(FEATURES, raw, strict=True)}


def unit_hash(text: str) -> float:
    """A stable number in [0, 1) for `text`: the first 32 bits of its MD5 (as SQL computes it)."""
    return int(hashlib.md5(text.encode()).hexdigest()[:8], 16) / 2**32


def held_out(listener: str, podcast_id: int) -> bool:
    """Whether the models never see this listener's engagement with this episode."""
    return (
        unit_hash(listener) < BOOTSTRAP_LISTENER_SHARE
        and unit_hash(f"{listener}:{podcast_id}") < HIDDEN_SHARE
    )


def _held_out(listener: str) -> bool:
    digest = hashlib.sha256(f"ranker-validation:{listener}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < VALIDATION_SHARE


def _over_best(scores: np.ndarray) -> np.ndarray:
    return _over_best_of(scores, scores)


def _over_best_of(part: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """`part` of each score over the best score (zeros when none is positive)."""
    top = scores.max(initial=0.0)
    return part / top if top > 0 else np.zeros_like(part, dtype=float)


def _inverse_rank(scores: np.ndarray) -> np.ndarray:
    """1 / (1 + rank) by score for the candidates with a positive score, 0 for the others."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(len(scores))
    return np.where(scores > 0, 1.0 / (1.0 + ranks), 0.0)
