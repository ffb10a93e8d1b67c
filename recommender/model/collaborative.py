"""The collaborative signal: what listeners do, across all listeners.

Item-to-item nearest neighbours on co-engagement (the model the real-data replay chose, see
bench/REAL_RESULTS.md). The worker rebuilds it from `user_listens` and `feedback_events`:
each listener's net engagement with an episode (a listen counts +1, events their weight, so
skips and dislikes count against) is clipped to [-1, 1]; episodes with positive engagement
form a sparse listener x episode matrix X, and the neighbours of episode i are the top
`COLLAB_NEIGHBORS` episodes j by asymmetric cosine  c_ij / (n_i^a * n_j^(1-a))  (c = X'X,
n = listeners per episode, a = COLLAB_ALPHA). X'X is built a block of episodes at a time,
so memory stays linear in the number of events, never quadratic in the catalogue.

A request reads it with one primary-key probe per episode of the listener: the score of a
candidate is the sum over the listener's episodes of their net engagement times the
neighbour score, so the listener's own likes and skips count at once, between refreshes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

BLOCK_PAIRS = 20_000_000  # co-engagement pairs computed per block of episodes (bounds memory)


@dataclass(frozen=True)
class Model:
    active_listeners: int  # listeners with positive engagement with any episode
    episodes: np.ndarray  # podcast ids with engagement
    popularity: np.ndarray  # per episode: decayed net engagement
    listeners: np.ndarray  # per episode: listeners with positive engagement
    neighbor_ids: list[np.ndarray]  # per episode: neighbour podcast ids, best first
    neighbor_scores: list[np.ndarray]


def build(interactions: np.ndarray, neighbors: int, alpha: float, half_life_days: float) -> Model | None:
    """The model from (listener, podcast id, net engagement, age in days) rows."""
    if not len(interactions):
        return None
    listener = interactions[:, 0].astype(np.int64)
    episodes, column = np.unique(interactions[:, 1].astype(np.int64), return_inverse=True)
    weight, age = interactions[:, 2], interactions[:, 3]
    popularity = np.bincount(column, weight * 0.5 ** (age / half_life_days), len(episodes))
    positive = weight > 0
    counts = np.bincount(column[positive], minlength=len(episodes))
    x = sp.csr_matrix(
        (np.ones(positive.sum(), np.float32), (listener[positive], column[positive])),
        shape=(int(listener.max()) + 1, len(episodes)),
    )
    neighbor_ids, neighbor_scores = top_neighbors(x, counts, neighbors, alpha)
    return Model(
        len(np.unique(listener[positive])),
        episodes,
        popularity.astype(np.float32),
        counts,
        [episodes[ids] for ids in neighbor_ids],
        neighbor_scores,
    )


def top_neighbors(
    x: sp.csr_matrix, counts: np.ndarray, k: int, alpha: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per episode (column of x), the `k` best columns by asymmetric cosine of co-engagement."""
    xt = x.T.tocsr()
    per_listener = np.diff(x.indptr)
    cost = np.cumsum(xt @ per_listener)  # pairs each episode's row of X'X touches
    scale = np.maximum(counts, 1).astype(np.float32)
    ids: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    start = 0
    while start < xt.shape[0]:
        done = cost[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(cost, done + BLOCK_PAIRS, side="right")))
        block = (xt[start:stop] @ x).tocsr()
        for row in range(block.shape[0]):
            lo, hi = block.indptr[row], block.indptr[row + 1]
            cols, together = block.indices[lo:hi], block.data[lo:hi]
            keep = cols != start + row
            cols, together = cols[keep], together[keep]
            similarity = together / (scale[start + row] ** alpha * scale[cols] ** (1 - alpha))
            if len(cols) > k:
                best = np.argpartition(-similarity, k)[:k]
                cols, similarity = cols[best], similarity[best]
            order = np.argsort(-similarity, kind="stable")
            ids.append(cols[order])
            scores.append(similarity[order].astype(np.float32))
        start = stop
    return ids, scores
