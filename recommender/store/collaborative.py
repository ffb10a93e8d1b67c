"""The co-engagement model's rows: the interactions it is built from, the model as stored
(`podcast_engagement`), and what a request reads of it."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypedDict

import numpy as np

from db_utils import dict_cursor
from recommender.model.collaborative import Interactions, Model
from recommender.model.events import signal_engagement
from recommender.model.pages import Candidate, Engagement
from recommender.model.ranker import BOOTSTRAP_LISTENER_SHARE, HIDDEN_SHARE
from recommender.store.bulk import copy_in
from recommender.store.podcasts import FILTERS, Filters, filter_params
from recommender.store.vectors import binary, from_binary

LISTENER_ITEMS = 200  # the listener's episodes a request scores from (most weighted first)


def unit_hash(text: str) -> str:
    """SQL for `model.ranker.unit_hash` of the text expression `text`."""
    return f"(('x' || substr(md5({text}), 1, 8))::bit(32)::bigint / 4294967296.0)"


BOOTSTRAP_LISTENER = f"{unit_hash('user_id')} < {BOOTSTRAP_LISTENER_SHARE}"
# `model.ranker.held_out`: engagement the models never see, for the ranker's bootstrap to hide.
PAIR = "user_id || ':' || podcast_id"
HELD_OUT = f"({BOOTSTRAP_LISTENER} AND {unit_hash(PAIR)} < {HIDDEN_SHARE})"
# The netted engagements (`sql/017_engagements.sql`), each listener's most recent `max_items`.
INTERACTIONS_SQL = f"""
    COPY (
        SELECT dense_rank() OVER (ORDER BY user_id) - 1, podcast_id,
               greatest(-1, least(1, net))::real, age_days::real,  -- short text: 30% less to send and parse
               consumed::int, {HELD_OUT}::int
        FROM (
            SELECT user_id, podcast_id, net, consumed,
                   extract(epoch FROM now() - last_at) / 86400 AS age_days,
                   row_number() OVER (PARTITION BY user_id ORDER BY last_at DESC) AS recency
            FROM engagements
        ) net
        WHERE (net <> 0 OR consumed) AND recency <= {{max_items}}
    ) TO STDOUT
"""


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The interactions the models learn from, those held out from them (`HELD_OUT`), and how far
    they reach (the newest event's id and listen's storage time), read in one snapshot: events
    after the marks are the next refresh's."""

    interactions: Interactions
    held_out: Interactions
    event_mark: int
    listen_mark: Any


class Freshness(TypedDict):
    refreshed_at: datetime | None
    age_seconds: float | None
    episodes: int
    refresh_seconds: float | None
    events_since_refresh: int
    factor_episodes: int
    factors_trained_at: datetime | None
    factors_trained_by: str | None
    factor_seconds: float | None
    ease_regularization: float | None
    ease_validation_recall: float | None
    signal: str
    signal_recall: dict[str, float | None] | None


# listener, podcast id, net engagement, age in days, played
COLUMN_TYPES = (np.int32, np.int64, np.float64, np.float64, np.bool_)


class _Parsed(io.TextIOBase):
    """What COPY writes (a text file: psycopg2 writes it rows as str), parsed in C a chunk of rows
    at a time, so the text of all of them (several hundred MB at 10M events) is never held at once.
    Each chunk's held-out rows (the last column) are set apart as it is parsed."""

    CHUNK_ROWS = 200_000

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.columns: tuple[list[np.ndarray], ...] = tuple([] for _ in COLUMN_TYPES)  # each column's chunks
        self.held_out: tuple[list[np.ndarray], ...] = tuple([] for _ in COLUMN_TYPES)

    def write(self, row: str) -> int:  # type: ignore[override]
        self.rows.append(row)
        if len(self.rows) >= self.CHUNK_ROWS:
            self.parse()
        return len(row)

    def parse(self) -> None:
        if self.rows:
            text = "".join(self.rows).replace("\t", " ")
            self.rows = []
            flat = np.fromstring(text, sep=" ", dtype=np.float64).reshape(-1, len(COLUMN_TYPES) + 1)
            hidden = flat[:, -1] > 0
            for columns, rows in ((self.columns, ~hidden), (self.held_out, hidden)):
                for chunks, dtype, values in zip(columns, COLUMN_TYPES, flat[rows, :-1].T, strict=True):
                    chunks.append(values.astype(dtype))  # a copy: the chunk's text and rows are freed

    def interactions(self, held_out: bool = False) -> Interactions:
        """The columns, each joined and its chunks freed before the next: the chunks and one
        joined column are held at once, never two copies of all of them."""
        self.parse()
        joined = []
        for chunks, dtype in zip(self.held_out if held_out else self.columns, COLUMN_TYPES, strict=True):
            joined.append(np.concatenate(chunks) if chunks else np.zeros(0, dtype))
            chunks.clear()
        return Interactions(*joined)


def read_snapshot(conn, max_items_per_listener: int) -> Snapshot:
    """The interactions as (listener number, podcast id, net engagement, age in days, played),
    parsed in C."""
    parsed = _Parsed()
    with conn, conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute(
            "SELECT (SELECT coalesce(max(id), 0) FROM feedback_events),"
            " (SELECT coalesce(max(created_at), '-infinity') FROM user_listens)"
        )
        event_mark, listen_mark = cur.fetchone()
        cur.copy_expert(INTERACTIONS_SQL.format(max_items=int(max_items_per_listener)), parsed)
    return Snapshot(parsed.interactions(), parsed.interactions(held_out=True), event_mark, listen_mark)


def _array(values: np.ndarray, fmt: str) -> str:
    return "{" + ",".join([fmt % v for v in values.tolist()]) + "}"


def _engagement_rows(model: Model) -> Iterator[str]:
    """`podcast_engagement`'s rows as COPY text, one episode at a time."""
    popularity, listeners = model.popularity.tolist(), model.listeners.tolist()
    for i, podcast_id in enumerate(model.episodes.tolist()):
        neighbours = [
            _array(model.neighbor_ids[i], "%d"),
            _array(model.neighbor_scores[i], "%.5g"),
            _array(model.ease_ids[i], "%d"),
            _array(model.ease_weights[i], "%.5g"),
        ]
        yield "\t".join([str(podcast_id), f"{popularity[i]:.6g}", str(listeners[i]), *neighbours]) + "\n"


def save(conn, model: Model | None, event_mark: int, listen_mark: Any, seconds: float) -> None:
    """Replace the stored model in one transaction: requests keep reading the old one until
    it commits (MVCC), nothing waits on a lock."""
    with conn.cursor() as cur:
        cur.execute("DELETE FROM podcast_engagement")
        if model is not None:
            # Episodes deleted since the interactions were read are skipped by the join.
            cur.execute("CREATE TEMP TABLE engagement_load (LIKE podcast_engagement) ON COMMIT DROP")
            copy_in(cur, "COPY engagement_load FROM STDIN", _engagement_rows(model))
            cur.execute(
                "INSERT INTO podcast_engagement SELECT l.* FROM engagement_load l"
                " JOIN podcasts p ON p.id = l.podcast_id"
            )
        cur.execute(
            "UPDATE collaborative_model SET refreshed_at = now(), event_mark = %s, listen_mark = %s,"
            " listeners = %s, episodes = %s, refresh_seconds = %s, ease_regularization = %s,"
            " ease_validation_recall = %s, engagement_signal = %s, signal_recall = %s",
            (
                event_mark,
                listen_mark,
                0 if model is None else model.active_listeners,
                0 if model is None else len(model.episodes),
                seconds,
                None if model is None else model.ease_regularization,
                None if model is None else model.ease_validation_recall,
                "judgement" if model is None else model.signal,
                None if model is None else json.dumps(model.signal_recall),
            ),
        )


def freshness(conn) -> Freshness:
    """When the model was built and how many events and listens arrived since; when its factors
    were trained, and by what."""
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            SELECT m.refreshed_at, extract(epoch FROM now() - m.refreshed_at)::float8 AS age_seconds,
                   m.episodes, m.refresh_seconds, m.factor_episodes, m.factors_trained_at,
                   m.factors_trained_by, m.factor_seconds, m.ease_regularization, m.ease_validation_recall,
                   m.engagement_signal AS signal, m.signal_recall,
                   (SELECT count(*) FROM feedback_events WHERE id > m.event_mark)
                   + (SELECT count(*) FROM user_listens WHERE created_at > m.listen_mark)
                   AS events_since_refresh
            FROM collaborative_model m
            """
        )
        return cur.fetchone()


def listener_items(conn, user_id: str, with_vectors: int = 20) -> list[Engagement]:
    """The listener's episodes with their engagement in [-1, 1] as the models weigh it (the net
    of `engagements`, a listen +1, events their weight, the latest judgement deciding, under the
    signal the last refresh chose), strongest net first; the first `with_vectors` positive ones
    carry their vector, so a reason can name the one a suggestion is closest to."""
    with conn.cursor() as cur:
        cur.execute(
            f"""
            SELECT n.podcast_id, n.net, n.consumed, p.title,
                   CASE WHEN (n.net > 0 OR n.consumed) AND n.position <= %(with_vectors)s
                        THEN {binary("p.embedding")} END AS embedding, p.category,
                   (SELECT engagement_signal FROM collaborative_model)
            FROM (
                SELECT podcast_id, greatest(-1, least(1, net))::real AS net, consumed,
                       row_number() OVER (ORDER BY abs(net) DESC, last_at DESC) AS position
                FROM engagements WHERE user_id = %(user_id)s AND (net <> 0 OR consumed)
            ) n JOIN podcasts p ON p.id = n.podcast_id
            WHERE n.position <= %(limit)s ORDER BY n.position
            """,
            {"user_id": user_id, "with_vectors": with_vectors, "limit": LISTENER_ITEMS},
        )
        rows = cur.fetchall()
    items = []
    for pid, net, consumed, title, vector, category, signal in rows:
        weight = float(signal_engagement(np.float64(net), np.bool_(consumed), signal or "judgement"))
        if weight != 0:
            items.append(
                Engagement(pid, weight, title, from_binary(vector) if weight > 0 else None, category, net)
            )
    return items


class Neighbourhood(NamedTuple):
    """A candidate's scores from the listener's episodes' neighbours."""

    co_engagement: float
    co_engagement_negative: float  # the part of it from the episodes they disliked or skipped
    ease: float
    ease_negative: float
    because_of: int  # the listener's episode that contributed most


def neighbour_scores(
    conn,
    items: list[Engagement],
    count: int,
    *,
    include: list[int],
    excluded: list[int],
    filters: Filters | None,
) -> dict[int, Neighbourhood]:
    """The co-engagement and EASE scores (and the part of each from the listener's negative
    engagement) of the `count` best-scored eligible episodes by each, and of those in `include`
    (the content candidates).

    One primary-key probe per listener episode; the sums run in Postgres."""
    if not items:
        return {}
    with conn.cursor() as cur:
        cur.execute(
            f"""
            WITH mine AS (
                SELECT m.weight, e.*
                FROM unnest(%(ids)s::bigint[], %(weights)s::real[]) AS m(podcast_id, weight)
                JOIN podcast_engagement e ON e.podcast_id = m.podcast_id
            ), pairs AS (
                SELECT n.neighbor_id AS podcast_id, m.podcast_id AS source,
                       m.weight * n.score AS co, 0::real AS ease
                FROM mine m
                CROSS JOIN LATERAL unnest(m.neighbor_ids, m.neighbor_scores) AS n(neighbor_id, score)
                UNION ALL
                SELECT n.neighbor_id, m.podcast_id, 0::real, m.weight * n.score
                FROM mine m
                CROSS JOIN LATERAL unnest(m.ease_ids, m.ease_weights) AS n(neighbor_id, score)
            ), scored AS (
                SELECT podcast_id, sum(co) AS co, coalesce(sum(co) FILTER (WHERE co < 0), 0) AS co_negative,
                       sum(ease) AS ease, coalesce(sum(ease) FILTER (WHERE ease < 0), 0) AS ease_negative,
                       (array_agg(source ORDER BY co DESC, ease DESC))[1] AS because_of
                FROM pairs GROUP BY podcast_id
            ), eligible AS (
                SELECT s.* FROM scored s JOIN podcasts p ON p.id = s.podcast_id
                WHERE p.status = 'ready' AND p.id <> ALL(%(excluded)s::bigint[]) AND {FILTERS}
            )
            (SELECT * FROM eligible WHERE co > 0 ORDER BY co DESC LIMIT %(k)s)
            UNION
            (SELECT * FROM eligible WHERE ease > 0 ORDER BY ease DESC LIMIT %(k)s)
            UNION
            SELECT * FROM eligible WHERE podcast_id = ANY(%(include)s::bigint[])
            """,
            {
                "ids": [i.podcast_id for i in items],
                "weights": [i.weight for i in items],
                "excluded": excluded,
                "k": count,
                "include": include,
                **filter_params(filters),
            },
        )
        return {pid: Neighbourhood(*map(float, scores), source) for pid, *scores, source in cur}


def co_engaged(conn, podcast_id: int, count: int) -> list[tuple[int, float]]:
    """(episode, co-engagement score) of the ready episodes most engaged with by the listeners of
    `podcast_id`, best first (the collaborative model's neighbours of it)."""
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT n.neighbor_id, n.score
            FROM podcast_engagement e
            CROSS JOIN LATERAL unnest(e.neighbor_ids, e.neighbor_scores) AS n(neighbor_id, score)
            JOIN podcasts p ON p.id = n.neighbor_id
            WHERE e.podcast_id = %s AND p.status = 'ready' AND n.score > 0
            ORDER BY n.score DESC LIMIT %s
            """,
            (podcast_id, count),
        )
        return [(pid, float(score)) for pid, score in cur]


def popular(conn, count: int, *, excluded: list[int], filters: Filters | None = None) -> list[Candidate]:
    """For listeners with nothing to go on: the most popular lately (net engagement, halving
    every POPULARITY_HALF_LIFE_DAYS), then the newest."""
    with conn.cursor() as cur:
        cur.execute(
            f"""
            (SELECT p.id AS podcast_id, p.title, p.summary, p.category, e.popularity, e.listeners
             FROM podcast_engagement e JOIN podcasts p ON p.id = e.podcast_id
             WHERE e.popularity > 0 AND p.status = 'ready' AND p.id <> ALL(%(excluded)s::bigint[])
               AND {FILTERS}
             ORDER BY e.popularity DESC LIMIT %(k)s)
            UNION ALL
            (SELECT p.id, p.title, p.summary, p.category, 0, 0 FROM podcasts p
             WHERE p.status = 'ready' AND p.id <> ALL(%(excluded)s::bigint[]) AND {FILTERS}
             ORDER BY p.published_at DESC NULLS LAST, p.id DESC LIMIT %(k)s)
            """,
            {"excluded": excluded, "k": count, **filter_params(filters)},
        )
        rows: dict[int, Candidate] = {}
        for pid, title, summary, category_, popularity, listeners in cur:
            rows.setdefault(pid, Candidate(pid, title, summary, category_, None, None, popularity, listeners))
        return list(rows.values())[:count]
