"""Matrix factorisation of who enjoyed what: implicit-feedback ALS (iALS, Hu, Koren & Volinsky
2008), fitted by `implicit`, with the listener folded in at request time.

Each listener's net engagement w with an episode (in [-1, 1], `model/events.py`) is a
confidence alpha * |w| that they want it (w > 0) or do not (w < 0: `implicit`'s negative
feedback), every other episode a confidence 1 that they do not. Training finds episode
factors Y; what is stored (`podcast_factors`, a table contract any trainer may write) is Y,
its Gram matrix Y'Y and the two constants. A request solves the listener's own least squares
against the fixed Y from their events as they are now (`fold_in`), so a like counts at once,
between trainings, and scores episodes by inner product: one HNSW probe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.model.collaborative import Interactions, episode_columns

DIMENSIONS = 64  # the table contract's vector(64) (sql/011_factors.sql)


@dataclass(frozen=True, eq=False)
class Factors:
    """A trained factor model: per episode its factors, and what a fold-in needs."""

    episodes: np.ndarray  # podcast ids
    item_factors: np.ndarray  # (episodes, DIMENSIONS) float32: Y
    gram: np.ndarray  # (DIMENSIONS, DIMENSIONS): Y'Y
    regularization: float
    alpha: float
    trained_by: str
    listeners: int


def train(
    interactions: Interactions,
    *,
    min_listeners: int,
    regularization: float,
    alpha: float,
    iterations: int,
    threads: int,
    start: tuple[np.ndarray, np.ndarray] | None = None,
) -> Factors | None:
    """iALS episode factors from the interactions; none with fewer than `min_listeners` listeners
    with positive engagement (64 factors would fit noise). From `start` (episodes and their
    factors, e.g. the stored ones) where given: the first pass then solves the listeners against
    them, and a few `iterations` refine what many would find from random factors.

    `implicit` is imported here, by training only: its import costs half a second that a
    request-serving process starting cold need not pay."""
    import implicit
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    listeners = len(np.unique(interactions.listener[interactions.engagement > 0]))
    if listeners < max(min_listeners, 1):
        return None
    episodes, column = episode_columns(interactions)
    user_items = sp.csr_matrix(
        (interactions.engagement.astype(np.float32), (interactions.listener, column)),
        shape=(int(interactions.listener.max()) + 1, len(episodes)),
    )
    user_items.eliminate_zeros()  # what the signal learnt from weighs 0 is not observed
    with threadpool_limits(1, "blas"):  # implicit's own threads do the work; BLAS threads would fight them
        model = AlternatingLeastSquares(
            factors=DIMENSIONS,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            num_threads=threads,
            random_state=0,
        )
        if start is not None:
            model.item_factors = initial_factors(episodes, *start)
        model.fit(user_items, show_progress=False)
    y = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    return Factors(
        episodes,
        y,
        gram(y),
        regularization,
        alpha,
        f"implicit {implicit.__version__} als"
        + (f", {iterations} passes from the stored factors" if start is not None else ""),
        listeners,
    )


def initial_factors(episodes: np.ndarray, known: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Factors to start from for `episodes` (sorted podcast ids): the rows of `factors` of the
    `known` episodes (sorted ids), small random ones (as `implicit` starts) for the others."""
    start = np.random.default_rng(0).random((len(episodes), DIMENSIONS), dtype=np.float32) * 0.01
    position = np.searchsorted(known, episodes).clip(max=max(len(known) - 1, 0))
    found = known[position] == episodes if len(known) else np.zeros(len(episodes), bool)
    start[found] = factors[position[found]]
    return start


def gram(item_factors: np.ndarray) -> np.ndarray:
    """Y'Y, in float64 (a sum over every episode)."""
    y = item_factors.astype(np.float64)
    return y.T @ y


def fold_in(
    gram: np.ndarray, regularization: float, alpha: float, factors: np.ndarray, engagement: np.ndarray
) -> np.ndarray | None:
    """The listener's factors x: the exact solution of their iALS least squares against the fixed
    episode factors, (Y'Y + lambda I + sum_i (c_i - 1) y_i y_i') x = sum_(w_i > 0) c_i y_i with
    c_i = alpha |w_i|, from the factors of the episodes they engaged with (rows of `factors`) and
    their net engagement. None when nothing they engaged with is positive."""
    positive = engagement > 0
    if not positive.any():
        return None
    y = factors.astype(np.float64)
    confidence = alpha * np.abs(engagement.astype(np.float64))
    a = gram + regularization * np.eye(len(gram)) + (y.T * (confidence - 1.0)) @ y
    b = (confidence * positive) @ y
    return np.linalg.solve(a, b).astype(np.float32)
