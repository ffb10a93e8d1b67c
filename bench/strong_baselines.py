"""The field's strong simple baselines for the real-data replay: EASE, RP3beta, iALS, tuned item-kNN.

Each one sees what the service is fed (`bench/real_replay.py`): every background listen (or rated
item), and each background listener's liked items (Last.fm: their 10 most played artists; ratings:
the items rated high) as a weight of 1 + `LIKE_WEIGHT` instead of 1. The evaluated listener is
folded in at request time from their positives (seeds weigh 1, hits, which the service gets as
likes, 1 + `LIKE_WEIGHT`); these classic models ignore the negatives (misses are only never shown
again, as for every baseline).

Hyper-parameters come from a small grid on a validation split of the background listeners:
`VALIDATION` of them are held out and replayed offline through the same protocol (same pages,
same feedback rule) against models trained on the remaining background; the test listeners are
never seen while choosing. The grid is scored on mean precision@5 over pages 2-6.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from bench.datasets import DataSet, Split
from bench.real_baselines import Scorer, Signals, figures, keep_top_k, replay

LIKE_WEIGHT = 1.0  # a liked item weighs 1 + LIKE_WEIGHT, a plain listen (or rating) 1
VALIDATION = 150  # background listeners held out to choose hyper-parameters
MEAN_KEY = "mean_precision_at_5_pages_2_6"  # what the grid is scored on
EASE_ITEMS = 3000  # EASE's closed form on the most engaged artists only (the rest score nothing)

GRIDS: dict[str, dict[str, list[Any]]] = {
    "EASE": {"lambda": [10.0, 25.0, 50.0, 100.0, 300.0, 1000.0]},
    "RP3beta": {"alpha": [0.5, 0.8, 1.0], "beta": [0.0, 0.2, 0.4, 0.6], "k": [50, 100, 200]},
    "iALS": {
        "factors": [64, 128, 256],
        "regularization": [1.0, 10.0],
        "alpha": [2.0, 5.0, 20.0],
        "iterations": [15],
    },
    "item-kNN (asymmetric cosine, shrink)": {
        "k": [50, 100, 200],
        "shrink": [0.0, 10.0, 50.0],
        "alpha": [0.5, 0.7, 0.9],
    },
}


def weighted(background: dict[str, list[str]], liked: dict[str, set[str]], ids: list[str]) -> sp.csr_matrix:
    """Background-user x item matrix: 1 per listen, 1 + LIKE_WEIGHT for the liked items."""
    index = {external_id: i for i, external_id in enumerate(ids)}
    rows, cols, data = [], [], []
    for u, (user, items) in enumerate(background.items()):
        for item in items:
            rows.append(u)
            cols.append(index[item])
            data.append(1.0 + LIKE_WEIGHT if item in liked[user] else 1.0)
    return sp.csr_matrix((np.array(data, dtype=np.float32), (rows, cols)), shape=(len(background), len(ids)))


def profile(signals: Signals, seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """The listener's positives and their weights: seeds 1, hits (likes) 1 + LIKE_WEIGHT."""
    items = np.array(signals.positives, dtype=np.int64)
    weights = np.ones(len(items), dtype=np.float32)
    weights[seeds:] += LIKE_WEIGHT
    return items, weights


def similarity_scorer(sims: sp.csr_matrix, counts: np.ndarray, seeds: int) -> Scorer:
    """Score = weighted sum of the rows of `sims` (item -> item) of the positives; ties to the popular."""
    tie_break = 1e-9 * counts
    sims = sims.tocsr().astype(np.float32)

    def score(signals: Signals) -> np.ndarray:
        items, weights = profile(signals, seeds)
        return np.asarray(sims[items].T @ weights).ravel() + tie_break

    return score


class Models:
    """Builds each baseline on one background matrix, caching what several grid points share."""

    def __init__(self, matrix: sp.csr_matrix, seeds: int) -> None:
        self.matrix, self.seeds = matrix, seeds
        self.binary = matrix.copy()
        self.binary.data[:] = 1.0
        self.counts = np.asarray(self.binary.sum(axis=0)).ravel()
        self._cooc: sp.csr_matrix | None = None
        self._gram: tuple[np.ndarray, np.ndarray] | None = None
        self._rp3: dict[float, sp.csr_matrix] = {}

    def build(self, name: str, params: dict[str, Any]) -> Scorer:
        return BUILDERS[name](self, **params)

    def ease(self, **p: Any) -> Scorer:
        """EASE (Steck 2019) on the EASE_ITEMS items with the most background listeners."""
        if self._gram is None:
            kept = np.sort(np.argsort(-self.counts, kind="stable")[:EASE_ITEMS])
            x = self.matrix[:, kept]
            self._gram = (kept, (x.T @ x).toarray().astype(np.float64))
        kept, gram = self._gram
        p_inv = np.linalg.inv(gram + p["lambda"] * np.eye(len(kept)))
        b = -p_inv / np.diag(p_inv)
        np.fill_diagonal(b, 0.0)
        position = np.full(len(self.counts), -1)
        position[kept] = np.arange(len(kept))
        floor = -1e6 + 1e-9 * self.counts  # artists outside the closed form: last, by popularity

        def score(signals: Signals) -> np.ndarray:
            items, weights = profile(signals, self.seeds)
            inside = position[items] >= 0
            scores = floor.copy()
            scores[kept] = weights[inside] @ b[position[items[inside]]] + 1e-9 * self.counts[kept]
            return scores

        return score

    def rp3beta(self, **p: Any) -> Scorer:
        """RP3beta (Paudel et al. 2017), as in Dacrema et al.'s reference code: P_ui and P_iu
        row-normalised and raised to alpha elementwise, W = P_iu P_ui, each column divided by the
        artist's popularity^beta, no self-loops, each artist's top k neighbours."""
        if p["alpha"] not in self._rp3:
            p_ui = _row_normalised(self.matrix)
            p_iu = _row_normalised(self.matrix.T.tocsr())
            p_ui.data **= p["alpha"]
            p_iu.data **= p["alpha"]
            self._rp3[p["alpha"]] = (p_iu @ p_ui).tocsr()
        w = self._rp3[p["alpha"]].tocoo()
        keep = w.row != w.col
        popularity = np.maximum(self.counts, 1.0) ** p["beta"]
        data = w.data[keep] / popularity[w.col[keep]]
        w = sp.csr_matrix((data, (w.row[keep], w.col[keep])), shape=w.shape)
        return similarity_scorer(keep_top_k(w, p["k"]), self.counts, self.seeds)

    def item_knn(self, **p: Any) -> Scorer:
        """Item-kNN, asymmetric cosine with shrinkage: sim(a, b) = |a & b| / (|a|^alpha |b|^(1 -
        alpha) + shrink) on the weighted listener columns, each artist's top k neighbours."""
        if self._cooc is None:
            self._cooc = (self.matrix.T @ self.matrix).tocsr()
        cooc = self._cooc.tocoo()
        keep = cooc.row != cooc.col
        rows, cols = cooc.row[keep], cooc.col[keep]
        norms = np.asarray(self.matrix.sum(axis=0)).ravel()
        data = cooc.data[keep] / (norms[rows] ** p["alpha"] * norms[cols] ** (1 - p["alpha"]) + p["shrink"])
        sims = sp.csr_matrix((data, (rows, cols)), shape=cooc.shape)
        return similarity_scorer(keep_top_k(sims, p["k"]), self.counts, self.seeds)

    def ials(self, **p: Any) -> Scorer:
        """iALS (Hu et al. 2008) fitted by `implicit`; the listener is folded in by solving their
        least squares against the fixed artist factors: confidence 1 + alpha * weight."""
        from implicit.cpu.als import AlternatingLeastSquares

        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=p["factors"],
                regularization=p["regularization"],
                alpha=p["alpha"],
                iterations=p["iterations"],
                random_state=0,
                num_threads=2,
            )
            model.fit(self.matrix, show_progress=False)
        y = np.asarray(model.item_factors, dtype=np.float64)
        gram = y.T @ y + p["regularization"] * np.eye(y.shape[1])
        tie_break = 1e-9 * self.counts

        def score(signals: Signals) -> np.ndarray:
            items, weights = profile(signals, self.seeds)
            confidence = 1.0 + p["alpha"] * weights
            yi = y[items]
            a = gram + (yi.T * (confidence - 1.0)) @ yi
            user = np.linalg.solve(a, yi.T @ confidence)
            return y @ user + tie_break

        return score


def _row_normalised(matrix: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return (sp.diags(1.0 / sums) @ matrix).tocsr()


BUILDERS: dict[str, Callable[..., Scorer]] = {
    "EASE": Models.ease,
    "RP3beta": Models.rp3beta,
    "iALS": Models.ials,
    "item-kNN (asymmetric cosine, shrink)": Models.item_knn,
}


def grid(name: str) -> list[dict[str, Any]]:
    keys, values = zip(*GRIDS[name].items(), strict=True)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def tune(
    data: DataSet, split: Split, ids: list[str], seeds: int, seed: int, log: Callable[[str], None]
) -> dict:
    """Per model, every grid point scored on validation listeners drawn from the background only."""
    validation = data.split(VALIDATION, seeds, seed + 1000, among=split.background)
    models = Models(weighted(validation.background, validation.liked, ids), seeds)
    chosen = {}
    for name in GRIDS:
        scored = []
        for params in grid(name):
            traces = replay(models.build(name, params), validation, ids, True)
            value = figures(traces, validation.held_out, len(ids))[MEAN_KEY]
            scored.append({"params": params, "validation": round(value, 4)})
            log(f"validation, seed {seed}: {name} {params}: {value:.4f}")
        best = max(scored, key=lambda s: s["validation"])
        chosen[name] = {**best, "grid": scored}
    return chosen


def strong_baselines(
    data: DataSet, split: Split, ids: list[str], seeds: int, seed: int, log: Callable[[str], None]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Each model tuned on the validation split, then refitted on the whole background and
    replayed on the test listeners with feedback; returns (figures by system, tuning)."""
    tuning = tune(data, split, ids, seeds, seed, log)
    models = Models(weighted(split.background, split.liked, ids), seeds)
    systems = {}
    for name, chosen in tuning.items():
        traces = replay(models.build(name, chosen["params"]), split, ids, True)
        systems[name] = figures(traces, split.held_out, len(ids))
        log(f"test, seed {seed}: {name} {chosen['params']}: {systems[name][MEAN_KEY]:.4f}")
    return systems, tuning
