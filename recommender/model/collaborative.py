"""The collaborative signal: what listeners do, across all listeners.

Item-to-item nearest neighbours on co-engagement (the model the real-data replay chose, see
bench/REAL_RESULTS.md). The worker rebuilds it from `user_listens` and `feedback_events`:
each listener's net engagement with an episode (a listen counts +1, events their weight, so
skips and dislikes count against) is clipped to [-1, 1]; episodes with positive engagement
form a sparse listener x episode matrix X, and the neighbours of episode i are the top
`COLLAB_NEIGHBORS` episodes j by asymmetric cosine  c_ij / (n_i^a * n_j^(1-a))  (c = X'X,
n = listeners per episode, a = COLLAB_ALPHA). X'X is built a block of episodes at a time,
so memory stays linear in the number of events, never quadratic in the catalogue.

Beside them, each episode's EASE neighbours (`model/ease.py`): co-engagement's cosine wins on
listening logs, EASE on explicit ratings, and the blend (`model/fusion.py`) learns which to trust.

A request reads it with one primary-key probe per episode of the listener: the score of a
candidate is the sum over the listener's episodes of their net engagement times the
neighbour score, so the listener's own likes and skips count at once, between refreshes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from recommender.model import ease
from recommender.model.events import SIGNALS, signal_engagement

BLOCK_PAIRS = 5_000_000  # co-engagement pairs computed per block of episodes (bounds memory)


@dataclass(frozen=True, eq=False)
class Interactions:
    """Each listener's net engagement with each episode they listened to or reacted to: one entry
    per (listener, episode), in [-1, 1], with the age of their latest event."""

    listener: np.ndarray  # 0 .. listeners - 1
    podcast_id: np.ndarray
    engagement: np.ndarray  # 0 where the signal learnt from says nothing: no model counts it
    age_days: np.ndarray
    consumed: np.ndarray  # they played it (`model.events.CONSUMPTIONS`)


@dataclass(frozen=True, eq=False)
class Learned:
    """The signal the models learn from (`model.events.SIGNALS`), chosen on the held-out episodes
    by the recall@20 of EASE fitted on each, with the interactions as it weighs them and that EASE."""

    signal: str
    interactions: Interactions
    ease: ease.Ease
    validation_recall: dict[str, float | None]  # per signal tried


@dataclass(frozen=True, eq=False)
class Neighbours:
    """Per episode (a column of the matrix it was built from), its neighbours, best first."""

    columns: list[np.ndarray]
    scores: list[np.ndarray]


@dataclass(frozen=True, eq=False)
class Model:
    """What is stored: per episode with engagement, its prior and its neighbours (podcast ids)."""

    active_listeners: int  # listeners with positive engagement with any episode
    episodes: np.ndarray  # podcast ids with engagement
    popularity: np.ndarray  # per episode: decayed net engagement
    listeners: np.ndarray  # per episode: listeners with positive engagement
    neighbor_ids: list[np.ndarray]  # per episode: neighbour podcast ids, best first
    neighbor_scores: list[np.ndarray]
    ease_ids: list[np.ndarray]  # per episode: EASE's neighbours (`model/ease.py`), best first
    ease_weights: list[np.ndarray]
    ease_regularization: float  # the lambda chosen on the held-out episodes, and its evidence
    ease_validation_recall: float | None
    signal: str  # what the models learnt from (`Learned`), and each signal's evidence
    signal_recall: dict[str, float | None]


def build(user_items: sp.csr_matrix, neighbors: int, alpha: float) -> Neighbours:
    """The item-to-item model of a listeners x episodes matrix (1 where the listener enjoyed the
    episode): for each episode, the `neighbors` episodes with the highest asymmetric cosine
    c_ij / (n_i^alpha * n_j^(1-alpha)), where c_ij counts the listeners who enjoyed both and
    n_i those who enjoyed i. Episodes no listener shares with it are not neighbours."""
    columns, scores = top_neighbors(user_items.tocsr(), user_items.getnnz(axis=0), neighbors, alpha)
    return Neighbours(columns, scores)


def with_signal(interactions: Interactions, signal: str) -> Interactions:
    """The interactions as `signal` weighs them (`model.events.signal_engagement`); the other
    columns are shared, not copied."""
    if signal == "judgement":
        return interactions
    engagement = signal_engagement(interactions.engagement, interactions.consumed, signal)
    return replace(interactions, engagement=engagement)


def learn_signal(
    interactions: Interactions, held_out: Interactions, ease_episodes: int, ease_neighbors: int
) -> Learned:
    """Judgement, unless consumption predicts the held-out enjoyed episodes better (ties keep
    judgement). Consumption is tried only where the two differ, where some played episode's net
    is not positive (a low rating, a listen then a skip): on plays and likes alone nothing is
    fitted twice."""
    judgement = SIGNALS[0]  # the default, kept on a tie
    differ = np.any(interactions.consumed & (interactions.engagement <= 0))
    weighed = {
        signal: with_signal(interactions, signal) for signal in SIGNALS if signal == judgement or differ
    }
    fitted = {
        signal: fit_ease(rows, held_out, ease_episodes, ease_neighbors) for signal, rows in weighed.items()
    }
    recalls = {signal: fit.validation_recall for signal, fit in fitted.items()}
    chosen = max(weighed, key=lambda signal: (recalls[signal] or 0.0, signal == judgement))
    return Learned(chosen, weighed[chosen], fitted[chosen], recalls)


def fit_ease(
    interactions: Interactions, held_out: Interactions, max_episodes: int, neighbors: int
) -> ease.Ease:
    """EASE on who enjoyed what (positive engagement), its lambda chosen on the `held_out`
    interactions' enjoyed episodes (of the same listeners, never in `interactions`). Only the
    episodes its closed form takes (`ease.most_enjoyed`) are made a matrix: at 10M events the
    whole matrix and its copies held 400 MB more."""
    episodes, column = episode_columns(interactions)
    kept = ease.most_enjoyed(
        np.bincount(column[interactions.engagement > 0], minlength=len(episodes)), max_episodes
    )
    del column
    listeners = int(max(interactions.listener.max(initial=0), held_out.listener.max(initial=0))) + 1
    inside = episodes[kept]
    fitted = ease.fit(
        _enjoyed(interactions, inside, (listeners, len(kept))),
        _enjoyed(held_out, inside, (listeners, len(kept))),
        max_episodes,
        neighbors,
    )
    columns = [np.zeros(0, np.int64)] * len(episodes)
    weights = [np.zeros(0, np.float32)] * len(episodes)
    for position, column_of in enumerate(kept):
        columns[column_of], weights[column_of] = kept[fitted.columns[position]], fitted.weights[position]
    return replace(fitted, columns=columns, weights=weights)


def model_of(learned: Learned, neighbors: int, alpha: float, half_life_days: float) -> Model | None:
    """The model to store: co-engagement neighbours from who enjoyed what (positive engagement)
    beside `learned`'s EASE, popularity from all engagement, each halving every `half_life_days`."""
    interactions, linear = learned.interactions, learned.ease
    if not len(interactions.listener):
        return None
    episodes, column = episode_columns(interactions)
    decay = 0.5 ** (interactions.age_days / half_life_days)
    popularity = np.bincount(column, interactions.engagement * decay, len(episodes))
    del decay
    positive = interactions.engagement > 0
    listener = interactions.listener
    shape = (int(listener.max()) + 1, len(episodes))
    user_items = _enjoyed(interactions, episodes, shape, column)
    del column
    model = build(user_items, neighbors, alpha)
    return Model(
        len(np.unique(listener[positive])),
        episodes,
        popularity.astype(np.float32),
        user_items.getnnz(axis=0),
        [episodes[columns] for columns in model.columns],
        model.scores,
        [episodes[columns] for columns in linear.columns],
        linear.weights,
        linear.regularization,
        linear.validation_recall,
        learned.signal,
        learned.validation_recall,
    )


def _enjoyed(
    interactions: Interactions, episodes: np.ndarray, shape: tuple[int, int], column: np.ndarray | None = None
) -> sp.csr_matrix:
    """1 where a listener enjoyed one of `episodes` (sorted podcast ids) in `interactions`
    (`column`: each interaction's column among them, where it is known)."""
    if not len(episodes):
        return sp.csr_matrix(shape, dtype=np.float32)
    keep = interactions.engagement > 0
    if column is None:
        column = np.searchsorted(episodes, interactions.podcast_id).clip(max=len(episodes) - 1)
        keep &= episodes[column] == interactions.podcast_id
    return sp.csr_matrix(
        (np.ones(keep.sum(), np.float32), (interactions.listener[keep], column[keep])), shape=shape
    )


def episode_columns(interactions: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """The episodes (sorted podcast ids) and each interaction's column among them (int32).

    Not `np.unique(..., return_inverse=True)`: at 10M events its argsort and inverse held
    300 MB at once, a sort and a binary search hold a third of that."""
    episodes = np.unique(interactions.podcast_id)
    return episodes, np.searchsorted(episodes, interactions.podcast_id).astype(np.int32)


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
