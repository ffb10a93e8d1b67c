"""Offline baselines for the real-data replay, and the figures every system is judged by.

Each baseline scores the whole catalogue for one listener from what the listener has said so far
(`Signals`); one replay loop (`replay`) runs the protocol of `bench/real_replay.py` on it: the same
pages, the same feedback rule (hits become positives, misses negatives), the same final list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.datasets import Split

PAGES = 6
PAGE_SIZE = 5
FINAL_SIZE = 20
NEIGHBOURS = 100  # item-kNN: neighbours kept per artist


@dataclass
class Signals:
    """What a listener has told a recommender: positives (seeds and hits) and negatives (misses).
    The classic baselines here score from the positives only."""

    positives: list[int]
    negatives: list[int] = field(default_factory=list)


Scorer = Callable[[Signals], np.ndarray]  # a score for every catalogue index, higher is better


@dataclass(frozen=True)
class Trace:
    """What one evaluated listener was shown: each page, then the final longer list."""

    pages: list[list[str]]
    final: list[str]


def figures(traces: dict[str, Trace], held_out: dict[str, set[str]], catalogue_size: int) -> dict[str, Any]:
    """Precision@5 per page (and its mean over pages 2.., after the first round of feedback),
    recall@20 and coverage over the evaluated listeners' traces.

    Recall@20 counts held-out artists among the final list's items not shown on a page, out of
    min(20, held-out artists not shown yet); listeners with none left are not counted. Coverage
    is the distinct episodes on the pages over the catalogue size."""
    hits = np.zeros(PAGES)
    recalls, covered = [], set()
    for user, trace in traces.items():
        wanted = held_out[user]
        shown = {item for page in trace.pages for item in page}
        covered |= shown
        for number, page in enumerate(trace.pages):
            hits[number] += len(wanted.intersection(page))
        left = wanted - shown
        if left:
            found = left.intersection(set(trace.final) - shown)
            recalls.append(len(found) / min(FINAL_SIZE, len(left)))
    precision = hits / (PAGE_SIZE * len(traces))
    return {
        "per_listener": per_listener(traces, held_out),
        "precision_at_5": [float(p) for p in precision],
        "mean_precision_at_5_pages_2_6": float(np.mean(precision[1:])),
        "recall_at_20": float(np.mean(recalls)),
        "coverage": len(covered) / catalogue_size,
    }


def per_listener(traces: dict[str, Trace], held_out: dict[str, set[str]]) -> dict[str, float]:
    """Each listener's mean precision@5 over pages 2.., for paired comparisons (not stored)."""
    return {
        user: float(np.mean([len(held_out[user].intersection(page)) / PAGE_SIZE for page in trace.pages[1:]]))
        for user, trace in traces.items()
    }


def paired_interval(system: dict[str, float], baseline: dict[str, float], resamples: int = 10_000) -> dict:
    """The mean per-listener difference of `system` over `baseline` (mean p@5 pages 2..), with a
    bootstrap 95 % interval over listeners, absolute and relative to the baseline's mean."""
    users = sorted(baseline)
    a, b = np.array([system[u] for u in users]), np.array([baseline[u] for u in users])
    sample = np.random.default_rng(0).integers(0, len(users), (resamples, len(users)))
    differences = (a[sample] - b[sample]).mean(axis=1)
    relative = a[sample].mean(axis=1) / b[sample].mean(axis=1) - 1
    return {
        "difference": round(float((a - b).mean()), 4),
        "interval": [round(float(v), 4) for v in np.percentile(differences, [2.5, 97.5])],
        "relative": round(float(a.mean() / b.mean() - 1), 4),
        "relative_interval": [round(float(v), 4) for v in np.percentile(relative, [2.5, 97.5])],
        "listeners": len(users),
    }


def top(scores: np.ndarray, excluded: set[int], k: int) -> list[int]:
    """The k best-scoring indexes not in `excluded`, best first."""
    scores = scores.astype(np.float64, copy=True)
    scores[list(excluded)] = -np.inf
    best = np.argpartition(-scores, k)[:k]
    return [int(i) for i in best[np.argsort(-scores[best], kind="stable")]]


def replay(scorer: Scorer, split: Split, ids: list[str], feedback: bool) -> dict[str, Trace]:
    """The protocol, offline: PAGES pages of PAGE_SIZE, then FINAL_SIZE more, per listener.
    Nothing is shown twice; with `feedback`, hits join the positives and misses the negatives."""
    index = {external_id: i for i, external_id in enumerate(ids)}
    traces = {}
    for user, seeds in split.seeds.items():
        wanted = {index[a] for a in split.held_out[user]}
        signals = Signals([index[a] for a in seeds])
        shown = set(signals.positives)
        pages = []
        for _ in range(PAGES):
            page = top(scorer(signals), shown, PAGE_SIZE)
            shown.update(page)
            pages.append([ids[i] for i in page])
            if feedback:
                signals.positives += [i for i in page if i in wanted]
                signals.negatives += [i for i in page if i not in wanted]
        final = top(scorer(signals), shown, FINAL_SIZE)
        traces[user] = Trace(pages, [ids[i] for i in final])
    return traces


def interactions(background: dict[str, list[str]], ids: list[str]) -> sp.csr_matrix:
    """Binary background-user x item matrix."""
    index = {external_id: i for i, external_id in enumerate(ids)}
    rows = [u for u, artists in enumerate(background.values()) for _ in artists]
    cols = [index[a] for artists in background.values() for a in artists]
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(background), len(ids)))


def random_scorer(size: int, seed: int) -> Scorer:
    """Uniformly random scores (reproducible when listeners are replayed in the same order)."""
    rng = np.random.default_rng(seed)
    return lambda signals: rng.random(size)


def popularity_scorer(matrix: sp.csr_matrix) -> Scorer:
    """How many background listeners listened to each artist."""
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    return lambda signals: counts


def keep_top_k(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's k largest entries."""
    matrix = matrix.tocsr()
    rows, cols, vals = [], [], []
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        data, idx = matrix.data[start:end], matrix.indices[start:end]
        if end - start > k:
            best = np.argpartition(-data, k)[:k]
            data, idx = data[best], idx[best]
        rows.append(np.full(len(idx), row))
        cols.append(idx)
        vals.append(data)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=matrix.shape
    )


def item_knn_scorer(matrix: sp.csr_matrix, neighbours: int = NEIGHBOURS) -> Scorer:
    """Classic item-kNN: cosine between artists' binary listener columns, each artist's top
    `neighbours`; an artist's score is the sum of its similarities to the positives (ties go to
    the more popular)."""
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    norms = np.sqrt(counts)
    cooc = (matrix.T @ matrix).tocoo()
    keep = cooc.row != cooc.col
    rows, cols = cooc.row[keep], cooc.col[keep]
    sims = sp.csr_matrix((cooc.data[keep] / (norms[rows] * norms[cols]), (rows, cols)), shape=cooc.shape)
    top_k = keep_top_k(sims, neighbours)
    tie_break = 1e-9 * counts
    return lambda signals: np.asarray(top_k[signals.positives].sum(axis=0)).ravel() + tie_break


def content_scorer(vectors: np.ndarray) -> Scorer:
    """Cosine between each episode's vector (unit length) and the mean of the positives'."""
    return lambda signals: vectors @ vectors[signals.positives].mean(axis=0)


def baselines(split: Split, ids: list[str], vectors: np.ndarray, seed: int) -> dict[str, dict[str, Any]]:
    """Every baseline with feedback, and those that use it without, on the same split."""
    matrix = interactions(split.background, ids)
    knn, content = item_knn_scorer(matrix), content_scorer(vectors)
    runs = {
        "random": (random_scorer(len(ids), seed), True),
        "popularity": (popularity_scorer(matrix), True),
        "item-kNN": (knn, True),
        "item-kNN, no feedback": (knn, False),
        "content": (content, True),
        "content, no feedback": (content, False),
    }
    return {
        name: figures(replay(scorer, split, ids, feedback), split.held_out, len(ids))
        for name, (scorer, feedback) in runs.items()
    }
