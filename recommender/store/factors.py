"""The factor model's rows (`podcast_factors` and the factor columns of `collaborative_model`,
sql/011_factors.sql): written whole by a trainer, read by requests as the constants of a fold-in
and one inner-product probe."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommender.model.factors import DIMENSIONS, Factors
from recommender.store.bulk import copy_in
from recommender.store.candidates import nearest
from recommender.store.podcasts import FILTERS, Filters, filter_params
from recommender.store.vectors import binary, from_binary


@dataclass(frozen=True, eq=False)
class FoldIn:
    """What a request needs to fold a listener in: Y'Y and the constants Y was trained with."""

    gram: np.ndarray
    regularization: float
    alpha: float


# The new factors are loaded into a table of their own, which `swap_in_factors()`
# (sql/019_training_import.sql, also what a trainer outside the service installs through) indexes
# once and swaps in for the old one: inserting into an HNSW index costs a graph search per row.
NEXT = "podcast_factors_next"


def save(conn, factors: Factors | None, seconds: float) -> None:
    """Replace the stored factors in the caller's transaction: requests read the old ones until it
    commits, and wait only for the swap at its end. Episodes deleted since the interactions were
    read are dropped."""
    with conn.cursor() as cur:
        if factors is None:
            cur.execute("DELETE FROM podcast_factors")
        else:
            cur.execute(f"CREATE TABLE {NEXT} (LIKE podcast_factors)")  # its columns, no index yet
            rows = zip(factors.episodes.tolist(), factors.item_factors, strict=True)
            copy_in(cur, f"COPY {NEXT} FROM STDIN", (f"{pid}\t{_vector(row)}\n" for pid, row in rows))
            cur.execute("SELECT swap_in_factors()")
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
    return "[" + ",".join(map("{:.7g}".format, values.tolist())) + "]"


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


def stored(conn) -> tuple[np.ndarray, np.ndarray]:
    """Every stored episode's factors: the episodes (sorted podcast ids) and their rows of Y."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT podcast_id, {binary('factors')} FROM podcast_factors ORDER BY podcast_id")
        rows = cur.fetchall()
    factors = np.array([from_binary(row[1]) for row in rows], np.float32).reshape(len(rows), DIMENSIONS)
    return np.array([row[0] for row in rows], np.int64), factors


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
