"""The learned ranker's rows: what it learns from (shown items with their logged features and what
the listener then did) and each model trained (`ranker_models`, sql/012_ranker.sql)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

import numpy as np

from db_utils import dict_cursor
from recommender.model.events import JUDGEMENTS
from recommender.model.fusion import FittedBlend
from recommender.model.ranker import FEATURES, Ranker, Trained
from recommender.store.collaborative import BOOTSTRAP_LISTENER


@dataclass(frozen=True, eq=False)
class Log:
    """Shown items of the pages a listener reacted to, a page's rows together."""

    features: np.ndarray  # (rows, FEATURES) as logged when shown
    enjoyed: np.ndarray  # 1 where the events attributed to the suggestion net above zero
    pages: np.ndarray  # page number of each row
    listeners: list[str]
    label_mark: int  # the newest attributed event read


class RankerState(TypedDict):
    version: int
    trained_at: datetime
    kind: str
    rows: int
    pages: int
    validation_ndcg: float
    blend_ndcg: float
    candidates_ndcg: dict[str, float]
    importances: dict[str, float]
    adopted: bool
    label_mark: int
    blend: dict | None  # FittedBlend.stored()


# A suggestion's outcome: the events that name it, netted as `netted_engagements` nets a listener's
# events on an episode (sql/017_engagements.sql): the latest judgement, else the sum.
LOG_SQL = f"""
    SELECT user_id, page, features, coalesce(net > 0, false)
    FROM (
        SELECT s.user_id, s.features, o.net,
               dense_rank() OVER (ORDER BY s.user_id, s.suggested_at) AS page,
               bool_or(o.net IS NOT NULL) OVER (PARTITION BY s.user_id, s.suggested_at) AS seen
        FROM (
            SELECT * FROM suggested_podcasts WHERE features IS NOT NULL ORDER BY id DESC LIMIT %(rows)s
        ) s
        LEFT JOIN LATERAL (
            SELECT CASE WHEN bool_or(judged)
                        THEN (array_agg(w ORDER BY at DESC, seq DESC) FILTER (WHERE judged))[1]
                        ELSE sum(w) END AS net
            FROM (SELECT weight AS w, occurred_at AS at, id AS seq, event IN {JUDGEMENTS} AS judged
                  FROM feedback_events WHERE suggestion_id = s.id) events
            HAVING count(*) > 0
        ) o ON true
        WHERE array_length(s.features, 1) = {len(FEATURES)}
    ) shown
    WHERE seen
    ORDER BY page
"""


def attributed_mark(conn) -> int:
    """The newest feedback event that names a suggestion (0: none)."""
    with conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM feedback_events WHERE suggestion_id IS NOT NULL")
        return cur.fetchone()[0]


def events_since(conn, mark: int) -> int:
    """Feedback events naming a suggestion after `mark`."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM feedback_events WHERE id > %s AND suggestion_id IS NOT NULL", (mark,)
        )
        return cur.fetchone()[0]


def read_log(conn, max_rows: int) -> Log:
    """The newest `max_rows` shown items that were ranked with features, of the pages with any
    attributed reaction."""
    with conn.cursor() as cur:
        label_mark = attributed_mark(conn)
        cur.execute(LOG_SQL, {"rows": max_rows})
        rows = cur.fetchall()
    if not rows:
        return Log(np.zeros((0, len(FEATURES)), np.float32), np.zeros(0), np.zeros(0, int), [], label_mark)
    listeners, pages, features, enjoyed = zip(*rows, strict=True)
    return Log(
        np.array(features, dtype=np.float32),
        np.array(enjoyed, dtype=float),
        np.array(pages, dtype=int),
        list(listeners),
        label_mark,
    )


def sample_listeners(conn, count: int, min_enjoyed: int, salt: str) -> list[str]:
    """Up to `count` of the bootstrap's listeners (`model.ranker.held_out`) who enjoyed at least
    `min_enjoyed` episodes, in an order `salt` sets."""
    with conn.cursor() as cur:
        cur.execute(
            f"""
            SELECT user_id FROM engagements
            WHERE {BOOTSTRAP_LISTENER} AND net > 0
            GROUP BY user_id HAVING count(*) >= %s
            ORDER BY md5(user_id || %s) LIMIT %s
            """,
            (min_enjoyed, salt, count),
        )
        return [row[0] for row in cur.fetchall()]


def save(conn, trained: Trained, blend: FittedBlend | None, label_mark: int) -> int:
    """Store a training's outcome, with the blend fitted beside it; returns its version."""
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO ranker_models (kind, model, features, rows, pages, validation_ndcg, blend_ndcg,
                                       candidates_ndcg, importances, adopted, label_mark, blend)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING version
            """,
            (
                trained.ranker.kind,
                trained.ranker.model,
                list(FEATURES),
                trained.rows,
                trained.pages,
                trained.validation_ndcg,
                trained.blend_ndcg,
                json.dumps(trained.candidates_ndcg),
                json.dumps(trained.importances),
                trained.adopted,
                label_mark,
                None if blend is None else json.dumps(blend.stored()),
            ),
        )
        return cur.fetchone()[0]


# A training on other features (before an upgrade added some) ranks nothing: the next one will.
CURRENT = "features = %(features)s::text[]"


def newest(conn) -> tuple[int, bool] | None:
    """(version, adopted) of the newest training on today's features; None before the first."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT version, adopted FROM ranker_models WHERE {CURRENT} ORDER BY version DESC LIMIT 1",
            {"features": list(FEATURES)},
        )
        return cur.fetchone()


def fitted_blend(conn, version: int) -> FittedBlend | None:
    """The blend fitted with that training (None for trainings before there was one)."""
    with conn.cursor() as cur:
        cur.execute("SELECT blend FROM ranker_models WHERE version = %s", (version,))
        row = cur.fetchone()
    return None if row is None or row[0] is None else FittedBlend.from_stored(row[0])


def model(conn, version: int) -> Ranker:
    with conn.cursor() as cur:
        cur.execute("SELECT kind, model FROM ranker_models WHERE version = %s", (version,))
        kind, text = cur.fetchone()
    return Ranker(kind, text)


def state(conn) -> RankerState | None:
    """The newest training, as health and the dashboard show it."""
    with dict_cursor(conn) as cur:
        cur.execute(
            f"""
            SELECT version, trained_at, kind, rows, pages, validation_ndcg, blend_ndcg, candidates_ndcg,
                   importances, adopted, label_mark, blend
            FROM ranker_models WHERE {CURRENT} ORDER BY version DESC LIMIT 1
            """,
            {"features": list(FEATURES)},
        )
        return cur.fetchone()


def purge(conn, keep: int) -> None:
    """Keep the newest `keep` trainings."""
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM ranker_models WHERE version <= (SELECT max(version) FROM ranker_models) - %s",
            (keep,),
        )
