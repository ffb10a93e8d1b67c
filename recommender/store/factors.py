"""The factor model's rows (`podcast_factors` and the factor columns of `collaborative_model`,
sql/011_factors.sql): written whole by a trainer, read by requests as the constants of a fold-in
and one inner-product probe."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from recommender.model.factors import DIMENSIONS, Factors
from recommender.store.candidates import nearest
from recommender.store.podcasts import FILTERS, Filters, filter_params
from recommender.store.vectors import binary, from_binary


@dataclass(frozen=True, eq=False)
class FoldIn:
    """What a request needs to fold a listener in: Y'Y and the constants Y was trained with."""

    gram: np.ndarray
    regularization: float
    alpha: float


def save(conn, factors: Factors | None, seconds: float) -> None:
    """Replace the stored factors in the caller's transaction (requests read the old ones until it
    commits). Episodes deleted since the interactions were read are skipped by the join."""
    with conn.cursor() as cur:
        cur.execute("DELETE FROM podcast_factors")
        if factors is not None:
            rows = io.StringIO()
            for podcast_id, row in zip(factors.episodes, factors.item_factors, strict=True):
                rows.write(f"{podcast_id}\t{_vector(row)}\n")
            rows.seek(0)
            cur.execute("CREATE TEMP TABLE factors_load (LIKE podcast_factors) ON COMMIT DROP")
            cur.copy_expert("COPY factors_load FROM STDIN", rows)
            cur.execute(
                "INSERT INTO podcast_factors SELECT l.* FROM factors_load l"
                " JOIN podcasts p ON p.id = l.podcast_id"
            )
        cur.execute(
            """
            UPDATE collaborative_model SET factor_gram = %s::vector, factor_regularization = %s,
                   factor_alpha = %s, factors_trained_at = now(), factors_trained_by = %s,
                   factor_episodes = %s, factor_seconds = %s
            """,
            (
                None if factors is None else _vector(factors.gram.ravel()),
                None if factors is None else factors.regularization,
                None if factors is None else factors.alpha,
                None if factors is None else factors.trained_by,
                0 if factors is None else len(factors.episodes),
                seconds,
            ),
        )


def _vector(values: np.ndarray) -> str:
    """pgvector's text form (written as text: the numpy adapter is not registered in every process)."""
    return "[" + ",".join(f"{v:.6g}" for v in values) + "]"


def fold_in_constants(conn) -> FoldIn | None:
    """The stored model's Y'Y, lambda and alpha; None while no factors are stored."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {binary('factor_gram')}, factor_regularization, factor_alpha FROM collaborative_model"
            " WHERE factor_gram IS NOT NULL AND factor_episodes > 0"
        )
        row = cur.fetchone()
    if row is None:
        return None
    gram = from_binary(row[0]).astype(np.float64).reshape(DIMENSIONS, DIMENSIONS)
    return FoldIn(gram, float(row[1]), float(row[2]))


def of_episodes(conn, podcast_ids: list[int]) -> dict[int, np.ndarray]:
    """The stored factors of the given episodes (those that have any)."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT podcast_id, {binary('factors')} FROM podcast_factors"
            " WHERE podcast_id = ANY(%s::bigint[])",
            (podcast_ids,),
        )
        return {pid: from_binary(factors) for pid, factors in cur}


def best_matches(
    conn, taste: np.ndarray, count: int, *, excluded: list[int], filters: Filters | None, ef_search: int
) -> list[int]:
    """The `count` ready, not excluded episodes passing `filters` whose factors have the largest
    inner product with the listener's (`taste`), best first: one probe of the HNSW index."""
    sql = f"""
        SELECT f.podcast_id FROM podcast_factors f JOIN podcasts p ON p.id = f.podcast_id
        WHERE p.status = 'ready' AND p.id <> ALL(%(excluded)s::bigint[]) AND {FILTERS}
        ORDER BY {{order}} LIMIT %(k)s
    """
    params = {"q": taste, "k": count, "excluded": excluded, **filter_params(filters)}
    rows = nearest(conn, sql, params, count, ef_search, len(excluded), order="f.factors <#> %(q)s")
    return [pid for (pid,) in rows]
