"""Recommendation candidates: the HNSW probe, candidates by id, exclusions, search and dislikes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypedDict

import numpy as np

import db_utils
from db_utils import dict_cursor
from recommender.model.pages import Candidate
from recommender.store.podcasts import FILTERS, Filters, filter_params
from recommender.store.vectors import binary, from_binary


class SearchResult(TypedDict):
    podcast_id: int
    title: str
    summary: str | None
    category: str | None
    language: str | None
    duration_seconds: int | None
    published_at: datetime | None
    score: float  # cosine similarity to the query


def exclusions(conn, user_id: str, window_hours: float) -> tuple[list[int], set[int]]:
    """(never recommend: listened, liked, rated, completed or disliked; suggested within the window).

    Passed to the candidate queries as a plain `id <> ALL(...)` filter: a NOT EXISTS in the
    nearest-neighbour query would make the planner join first and give up the index scan."""
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT podcast_id, false FROM user_listens WHERE user_id = %(u)s
            UNION
            SELECT podcast_id, false FROM feedback_events
            WHERE user_id = %(u)s AND event IN ('like', 'dislike', 'complete', 'rate')
            UNION
            SELECT podcast_id, true FROM suggested_podcasts
            WHERE user_id = %(u)s AND suggested_at > now() - make_interval(secs => %(window)s)
            """,
            {"u": user_id, "window": window_hours * 3600},
        )
        rows = cur.fetchall()
    return [pid for pid, recent in rows if not recent], {pid for pid, recent in rows if recent}


# The shape of a recommendation candidate: `{source}` yields podcast ids. `popularity` is the
# prior in [0, 1): log of the decayed engagement against log of the listeners the model knows,
# so one like in a large audience counts for little. `affinity` is the inner product of the
# episode's factors with the listener's (`taste`, model/factors.py; NULL without). A reason
# written for this user since `valid_from` comes along with the evidence it was written from
# (the caller checks that the evidence still holds). The model's audience is a scalar subquery,
# not a join: joined, its never-analyzed one-row table made Postgres 18 sort the whole catalog
# (58 ms instead of 7 at 10k episodes).
CANDIDATE_SQL = """
    SELECT p.id AS podcast_id, p.title, p.summary, p.category, {embedding} AS embedding,
           p.embedding <=> %(q)s AS distance, coalesce(e.listeners, 0) AS listeners,
           coalesce(
               ln(1 + greatest(e.popularity, 0)) / ln(2 + (SELECT listeners FROM collaborative_model)), 0
           ) AS popularity,
           -(f.factors <#> %(taste)s::vector) AS affinity,
           extract(epoch FROM now() - p.published_at) / 86400 AS age_days, r.reason, r.evidence
    FROM ({source}) c JOIN podcasts p ON p.id = c.podcast_id
    LEFT JOIN podcast_engagement e ON e.podcast_id = p.id
    LEFT JOIN podcast_factors f ON f.podcast_id = p.id
    LEFT JOIN reasons r
        ON r.user_id = %(user_id)s AND r.podcast_id = p.id AND r.written_at >= %(valid_from)s
    ORDER BY distance
""".replace("{embedding}", binary("p.embedding"))


def _candidate(row: tuple) -> Candidate:
    podcast_id, title, summary, category, embedding, distance, listeners, popularity = row[:8]
    affinity, age_days, reason, evidence = row[8:]
    similarity = None if distance is None else 1.0 - float(distance)
    return Candidate(
        podcast_id,
        title,
        summary,
        category,
        from_binary(embedding),
        similarity,
        float(popularity),
        listeners,
        affinity=None if affinity is None else float(affinity),
        age_days=None if age_days is None else float(age_days),
        written_reason=reason,
        written_for=evidence,
    )


def candidate_podcasts(
    conn,
    query: np.ndarray,
    count: int,
    *,
    user_id: str,
    taste: np.ndarray | None,
    excluded: list[int],
    reasons_valid_from: datetime,
    filters: Filters | None = None,
    ef_search: int = 100,
) -> list[Candidate]:
    """Up to `count` ready, not excluded podcasts passing `filters` nearest to `query` by cosine (HNSW)."""
    source = f"""
        SELECT p.id AS podcast_id FROM podcasts p
        WHERE p.status = 'ready' AND p.id <> ALL(%(excluded)s::bigint[]) AND {FILTERS}
        ORDER BY {{order}} LIMIT %(k)s
    """
    params = {"q": query, "taste": taste, "user_id": user_id, "k": count, **filter_params(filters)}
    params |= {"valid_from": reasons_valid_from, "excluded": excluded}
    sql = CANDIDATE_SQL.replace("{source}", source)
    return [_candidate(row) for row in nearest(conn, sql, params, count, ef_search, len(excluded))]


def candidates_by_id(
    conn,
    ids: Sequence[int],
    query: np.ndarray | None,
    *,
    user_id: str,
    taste: np.ndarray | None,
    reasons_valid_from: datetime,
) -> list[Candidate]:
    """The candidates of the given podcasts (e.g. found by co-engagement or by factors)."""
    if not ids:
        return []
    params = {"q": query, "taste": taste, "ids": list(ids), "user_id": user_id}
    params["valid_from"] = reasons_valid_from
    with conn.cursor() as cur:
        source = "SELECT unnest(%(ids)s::bigint[]) AS podcast_id"
        cur.execute(CANDIDATE_SQL.replace("{source}", source), params)
        return [_candidate(row) for row in cur.fetchall()]


@contextmanager
def hnsw_probe(conn, candidates: int) -> Iterator[None]:
    """Plan the queries run inside as the HNSW probe, in this transaction: the index scan with
    `candidates` (hnsw.ef_search, at most 1,000) and, on pgvector 0.8+, iterative scans.

    Sequential scans are off for the probe alone, as pgvector advises: its cost model ignores
    out-of-line (TOAST) storage, so at 1536 dimensions a larger ef_search made Postgres pick a
    470 ms table scan over an 8 ms index scan (100k episodes, bench/findings.md)."""
    iterative = (
        ", set_config('hnsw.iterative_scan', 'relaxed_order', true)" if db_utils.iterative_scan else ""
    )
    with conn.cursor() as cur:
        cur.execute(
            "SELECT current_setting('enable_seqscan'), set_config('enable_seqscan', 'off', true),"
            f" set_config('hnsw.ef_search', %s, true){iterative}",
            (str(min(candidates, 1000)),),
        )
        seqscan = cur.fetchone()[0]
    yield
    with conn.cursor() as cur:
        cur.execute("SELECT set_config('enable_seqscan', %s, true)", (seqscan,))


def nearest(
    conn,
    sql: str,
    params: dict[str, Any],
    wanted: int,
    ef_search: int,
    filtered_out: int = 0,
    *,
    dicts: bool = False,
    order: str = "p.embedding <=> %(q)s",
) -> list[Any]:
    """The rows (tuples, or dicts) of a nearest-neighbour query whose ORDER BY is `{order}`, the
    distance `order` (an HNSW-indexed expression), through the index.

    The index scan applies WHERE filters to the ef_search nearest it finds, so selective
    filters can leave fewer than `wanted` rows: ef_search grows with the rows known to be
    filtered out, pgvector >= 0.8 keeps scanning (iterative scans), and older versions fall
    back to an exact scan when that is still not enough, the only way to be sure."""

    def cursor():
        return dict_cursor(conn) if dicts else conn.cursor()

    with hnsw_probe(conn, max(ef_search, wanted + filtered_out)), cursor() as cur:
        cur.execute(sql.format(order=order), params)
        rows = cur.fetchall()
    if len(rows) < wanted:
        with cursor() as cur:
            cur.execute(sql.format(order=f"({order}) + 0"), params)  # not indexable: exact
            rows = cur.fetchall()
    return rows


def search(
    conn,
    query: np.ndarray,
    limit: int,
    *,
    filters: Filters,
    ef_search: int = 100,
) -> list[SearchResult]:
    """The `limit` ready podcasts nearest to `query` that pass every given filter."""
    params = {"q": query, "k": limit, **filter_params(filters)}
    sql = f"""
        SELECT * FROM (
            SELECT p.id AS podcast_id, p.title, p.summary, p.category, p.language, p.duration_seconds,
                   p.published_at, 1 - (p.embedding <=> %(q)s) AS score
            FROM podcasts p
            WHERE p.status = 'ready' AND {FILTERS}
            ORDER BY {{order}} LIMIT %(k)s
        ) c ORDER BY score DESC
    """
    return nearest(conn, sql, params, limit, ef_search, dicts=True)


def similar_content(
    conn, vector: np.ndarray, podcast_id: int, count: int, ef_search: int = 100
) -> list[tuple[int, float]]:
    """(episode, cosine similarity) of the `count` ready episodes nearest to `vector`, the vector of
    `podcast_id` (left out)."""
    sql = """
        SELECT * FROM (
            SELECT p.id, 1 - (p.embedding <=> %(q)s) AS similarity FROM podcasts p
            WHERE p.status = 'ready' AND p.id <> %(id)s
            ORDER BY {order} LIMIT %(k)s
        ) c ORDER BY similarity DESC
    """
    rows = nearest(conn, sql, {"q": vector, "id": podcast_id, "k": count}, count, ef_search, filtered_out=1)
    return [(pid, float(similarity)) for pid, similarity in rows]


def negative_examples(conn, user_id: str, limit: int = 20) -> np.ndarray | None:
    """Vectors of the episodes this user most recently disliked, skipped or rated low."""
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT p.embedding FROM podcasts p JOIN (
                SELECT podcast_id, max(occurred_at) AS at FROM feedback_events
                WHERE user_id = %s AND weight < 0 GROUP BY podcast_id ORDER BY at DESC LIMIT %s
            ) n ON n.podcast_id = p.id
            WHERE p.status = 'ready'
            """,
            (user_id, limit),
        )
        vectors = [row[0] for row in cur.fetchall()]
    return np.vstack(vectors) if vectors else None
