"""Recall of the indexed query against exact search, for a sweep of hnsw.ef_search.

The indexed query has the shape of the app's candidate query (`store.candidates.candidate_podcasts`):
status and category filters, the per-user exclusions as `id <> ALL(...)`,
`ORDER BY embedding <=> q LIMIT 40` (the app asks for 4 candidates per item of a 10-item page),
planned as the app plans it (`store.candidates.hnsw_probe`) with `hnsw.ef_search` set to each
value of the sweep. The exact answer is the same query with index scans disabled, so Postgres
scans every row. recall@10 compares the first 10 rows, recall@40 all of them.

Without iterative scans (pgvector before 0.8) an HNSW scan returns at most ef_search rows, so
recall@40 is only given for ef_search >= 40 (the app never sets less than the rows it wants).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.catalog import vector_text
from bench.db import connect
from bench.report import log
from recommender import store

K = 10
CANDIDATES = 40
QUERY = """
    SELECT p.id FROM podcasts p
    WHERE p.status = 'ready' AND p.id <> ALL(%(excluded)s::bigint[])
      AND (%(category)s::text IS NULL OR p.category = %(category)s)
    ORDER BY p.embedding <=> %(q)s LIMIT %(k)s  -- an untyped literal: vector or halfvec as stored
"""
# A listener with nothing excluded and no category filter: the common case of the app's query.
PARAMS = {"category": None, "excluded": [], "k": CANDIDATES}


def exact_neighbours(conn, queries: list[str]) -> list[list[int]]:
    answers = []
    with conn.cursor() as cur:
        for q in queries:
            cur.execute("SET LOCAL enable_indexscan = off")
            cur.execute(QUERY, {**PARAMS, "q": q})
            answers.append([row[0] for row in cur.fetchall()])
            conn.rollback()
    return answers


def uses_index(conn, q: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("EXPLAIN " + QUERY, {**PARAMS, "q": q})
        plan = "\n".join(row[0] for row in cur.fetchall())
    conn.rollback()
    return "podcasts_embedding_hnsw" in plan


def indexed_recall(conn, queries: list[str], exact: list[list[int]], ef_search: int) -> dict[str, Any]:
    hits_10 = hits_40 = 0
    timings = []
    for q, truth in zip(queries, exact, strict=True):
        with store.candidates.hnsw_probe(conn, ef_search), conn.cursor() as cur:
            started = time.perf_counter()
            cur.execute(QUERY, {**PARAMS, "q": q})
            found = [row[0] for row in cur.fetchall()]
            timings.append(time.perf_counter() - started)
        conn.rollback()
        hits_10 += len(set(found[:K]) & set(truth[:K]))
        hits_40 += len(set(found) & set(truth))
    return {
        "recall_at_10": round(hits_10 / (K * len(queries)), 4),
        "recall_at_40": round(hits_40 / (CANDIDATES * len(queries)), 4) if ef_search >= CANDIDATES else None,
        "query_p50_ms": round(float(np.percentile(timings, 50)) * 1000, 2),
    }


def measure(
    dsn: str,
    query_vectors: np.ndarray,
    ef_values: list[int],
    catalog: dict[str, Any],
    truth_dsn: str | None = None,
) -> list[dict[str, Any]]:
    """One row per ef_search value, with the index parameters, build time and size. The exact
    answers come from `truth_dsn` when given: the same catalog stored as full-precision
    vectors, so a halfvec catalog's recall counts what halving the precision loses too."""
    queries = [vector_text(v) for v in query_vectors]
    conn = connect(dsn)
    truth = connect(truth_dsn) if truth_dsn else conn
    try:
        started = time.perf_counter()
        exact = exact_neighbours(truth, queries)
        exact_ms = (time.perf_counter() - started) * 1000 / len(queries)
        if not uses_index(conn, queries[0]):
            log("warning: the planner does not use the HNSW index for the recall query")
        rows = []
        for ef in ef_values:
            result = indexed_recall(conn, queries, exact, ef)
            rows.append(
                {
                    "catalog_size": catalog["spec"]["size"],
                    "dims": catalog["spec"]["dims"],
                    "storage": catalog["spec"].get("storage", "vector"),
                    **result,
                    "exact_query_ms": round(exact_ms, 1),
                    "queries": len(queries),
                    "m": catalog["m"],
                    "ef_construction": catalog["ef_construction"],
                    "ef_search": ef,
                    "build_seconds": catalog["build_seconds"],
                    "index_mb": catalog["index_mb"],
                }
            )
            log(f"  recall@10 {result['recall_at_10']:.3f} at ef_search={ef} ({result['query_p50_ms']} ms)")
        return rows
    finally:
        conn.close()
        truth.close()
