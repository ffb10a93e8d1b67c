"""NDCG@k of pages of candidates, for scoring many rankings of the same pages at once.

Rows are candidates (shown items or recomputed candidates), numbered by page with a page's rows
together; a label is 1 where the listener enjoyed the item. `Pages` lays them out one page a row
(padded), once, so that each ranking to score costs one sort of a (pages x width) array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AT = 5
TIE = 1e-9


@dataclass(frozen=True, eq=False)
class Pages:
    """The pages with at least one enjoyed item, laid out for scoring."""

    rows: np.ndarray  # (pages, width) row of each slot, -1 for padding
    labels: np.ndarray  # (pages, width), 0 for padding
    ideal: np.ndarray  # (pages,) the best DCG each page allows
    first_rows: np.ndarray  # (pages,) a row of each page (for what belongs to the page: its listener)

    @classmethod
    def of(cls, labels: np.ndarray, pages: np.ndarray, k: int = AT) -> Pages:
        _, starts, sizes = np.unique(pages, return_index=True, return_counts=True)
        enjoyed = np.add.reduceat(labels > 0, starts) if len(starts) else np.zeros(0)
        keep = enjoyed > 0
        starts, sizes = starts[keep], sizes[keep]
        width = int(sizes.max()) if len(sizes) else 0
        slot = np.arange(width)
        rows = np.where(slot < sizes[:, None], starts[:, None] + slot, -1)
        padded = np.where(rows >= 0, labels[np.maximum(rows, 0)], 0.0)
        ideal = (-np.sort(-padded, axis=1)[:, :k] * _discounts(min(k, width))).sum(axis=1)
        return cls(rows, padded, ideal, starts)

    def __len__(self) -> int:
        return len(self.rows)

    def ndcg(self, scores: np.ndarray, k: int = AT) -> np.ndarray:
        """NDCG@k of each page when its rows are ranked by `scores`, ties broken against the
        ranking (a tie puts the miss first: no credit for ties)."""
        if not len(self.rows):
            return np.zeros(0)
        # A hit tied with a miss ranks below it (TIE below any real difference of scores).
        ranked = np.where(self.rows >= 0, scores[np.maximum(self.rows, 0)], -np.inf) - TIE * self.labels
        k = min(k, ranked.shape[1])
        best = np.argpartition(-ranked, k - 1, axis=1)[:, :k]  # the top k, unordered: no full sort
        order = np.take_along_axis(best, np.argsort(-np.take_along_axis(ranked, best, 1), axis=1), 1)
        top = np.take_along_axis(self.labels, order, axis=1)
        return (top * _discounts(top.shape[1])).sum(axis=1) / self.ideal


def informative(labels: np.ndarray, pages: np.ndarray) -> np.ndarray:
    """Rows of pages with both an enjoyed and a not enjoyed item: the only ones a ranking learns from."""
    _, inverse = np.unique(pages, return_inverse=True)
    positives = np.bincount(inverse, labels > 0)
    sizes = np.bincount(inverse)
    return ((positives > 0) & (positives < sizes))[inverse]


def _discounts(count: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, count + 2))
