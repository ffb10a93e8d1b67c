"""EASE (Steck 2019): a linear item-to-item model in closed form, the strongest simple model on
explicit ratings where co-engagement's cosine and the factors fall behind.

With X the listeners x episodes matrix (1 where enjoyed) and G = X'X, the weights are
B = I - P / diag(P) with P = (G + lambda I)^-1, the diagonal zeroed: a listener's score of episode
j is the sum over their episodes i of their net engagement times B_ij, so disliked and skipped
episodes count against (EASE takes negative inputs). The inverse is dense, so it is taken on the
`max_episodes` episodes most listeners enjoyed, and each keeps its `neighbors` largest positive
weights (stored beside the co-engagement neighbours, read by the same probe).

Lambda is chosen per deployment, never set per data set: each candidate of `LAMBDAS` ranks the
bootstrap listeners' held-out episodes (the ones no model sees, `model.ranker.held_out`) and the
one with the best recall@20 is kept; while the largest tried is the best, the next of `WIDER` is
tried too (dense, small catalogues of ratings want more than listening logs do); without held-out
episodes the middle one is. Pure: sparse matrices in, weights out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

LAMBDAS = (10.0, 30.0, 100.0, 300.0, 1000.0)
WIDER = (3000.0, 10000.0, 30000.0)  # tried in turn while the largest lambda so far is the best
RECALL_AT = 20
VALIDATION_LISTENERS = 1000  # bounds the validation's dense scores (listeners x episodes)


@dataclass(frozen=True, eq=False)
class Ease:
    """Per column of the matrix it was fitted on, its neighbours (columns) and weights, best first;
    empty for the columns outside the closed form. With the lambda chosen and the evidence."""

    columns: list[np.ndarray]
    weights: list[np.ndarray]
    regularization: float
    validation_recall: float | None  # recall@20 of the held-out episodes under that lambda
    validation_listeners: int


def fit(user_items: sp.csr_matrix, held_out: sp.csr_matrix, max_episodes: int, neighbors: int) -> Ease:
    """EASE on the `max_episodes` columns of `user_items` with most listeners, its lambda chosen
    on `held_out` (same shape: 1 where a listener enjoyed an episode the matrix does not hold)."""
    kept = most_enjoyed(user_items.getnnz(axis=0), max_episodes)
    columns: list[np.ndarray] = [np.zeros(0, np.int64)] * user_items.shape[1]
    values: list[np.ndarray] = [np.zeros(0, np.float32)] * user_items.shape[1]
    if len(kept) < 2:
        return Ease(columns, values, LAMBDAS[len(LAMBDAS) // 2], None, 0)
    x = user_items[:, kept].astype(np.float64).tocsr()
    gram = (x.T @ x).toarray()
    rows = np.flatnonzero(held_out.getnnz(axis=1))[:VALIDATION_LISTENERS]
    scored: dict[float, float] = {}
    for lam in (*LAMBDAS, *WIDER) if len(rows) else ():
        if lam in WIDER and max(scored, key=lambda tried: (scored[tried], tried)) < max(scored):
            break
        scored[lam] = _recall(
            _weights(gram, lam), x[rows], held_out[rows][:, kept], held_out[rows].getnnz(axis=1)
        )
    chosen = max(scored, key=lambda lam: (scored[lam], lam)) if scored else LAMBDAS[len(LAMBDAS) // 2]
    weights = _weights(gram, chosen)
    del gram
    for row, column in enumerate(kept):
        best = np.argpartition(-weights[row], min(neighbors, len(kept) - 1))[:neighbors]
        best = best[weights[row, best] > 0]
        best = best[np.argsort(-weights[row, best], kind="stable")]
        columns[column], values[column] = kept[best], weights[row, best].astype(np.float32)
    return Ease(columns, values, chosen, scored.get(chosen), len(rows))


def most_enjoyed(counts: np.ndarray, max_episodes: int) -> np.ndarray:
    """The columns (sorted) of the `max_episodes` episodes most listeners enjoyed, of those anyone did."""
    return np.sort(np.argsort(-counts, kind="stable")[: min(max_episodes, int((counts > 0).sum()))])


def _weights(gram: np.ndarray, regularization: float) -> np.ndarray:
    """B = I - P / diag(P), P = (G + lambda I)^-1, its diagonal zero (Steck 2019, eq. 8); in place
    where it can be, so a refresh holds three episodes x episodes matrices at most."""
    regularized = gram.copy()
    regularized.flat[:: len(gram) + 1] += regularization
    b = np.linalg.inv(regularized)
    del regularized
    b /= -np.diag(b).copy()
    np.fill_diagonal(b, 0.0)
    return b


def _recall(b: np.ndarray, seen: sp.csr_matrix, hidden_kept: sp.csr_matrix, hidden: np.ndarray) -> float:
    """Mean over listeners of the share of their hidden episodes in their top RECALL_AT (hidden
    episodes outside the closed form count as missed: every lambda misses them alike)."""
    scores = seen @ b
    scores[seen.nonzero()] = -np.inf
    k = min(RECALL_AT, scores.shape[1] - 1)
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    found = np.take_along_axis(hidden_kept.toarray(), top, axis=1).sum(axis=1)
    return float(np.mean(found / np.maximum(hidden, 1)))
