"""Episodes: writing them, the enrichment queue (pending rows leased to a worker) and the vector index."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TypedDict

import numpy as np
import psycopg2
import psycopg2.extras

from db_utils import connection, dict_cursor

CHANGES_CHANNEL = "podcasts_pending"  # NOTIFY channel of the podcasts_notify_* triggers (sql/)


class PodcastRow(TypedDict):
    """An episode as the API shows it."""

    id: int
    external_id: str | None
    title: str
    description: str | None
    category: str | None
    language: str | None
    duration_seconds: int | None
    published_at: datetime | None
    summary: str | None  # written by the LLM
    status: str  # pending (to enrich) | ready (summarized and embedded)
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class ToEnrich(TypedDict):
    """What enriching an episode takes: its text, and its hash (changed text stays pending)."""

    id: int
    title: str
    description: str | None
    transcript: str
    content_hash: str


class StoredPodcast(PodcastRow):
    transcript: str
    content_hash: str


PODCAST_FIELDS = (
    "external_id", "title", "description", "transcript", "category", "language",
    "duration_seconds", "published_at",
)  # fmt: skip


LIVE = "status <> 'deleted'"  # a deleted episode is a tombstone: its history stays, nothing else sees it
PODCAST_COLUMNS = (
    "id, external_id, title, description, category, language, duration_seconds, published_at,"
    " summary, status, last_error, created_at, updated_at"
)


def upsert(conn, fields: dict[str, Any], idempotency_key: str | None = None) -> tuple[StoredPodcast, bool]:
    """Insert a podcast, or update the one with the same external_id, or without one, the one
    stored with the same `idempotency_key` (an earlier attempt of this request, which died before
    it answered). Returns (row, created): an earlier attempt's row counts as created.

    Whether it needs enriching is decided by the `podcasts_mark_changed` trigger, for every
    write path alike: new or changed text becomes 'pending', unchanged text keeps its state.
    """
    target = (
        "external_id"
        if fields.get("external_id") is not None or idempotency_key is None
        else "idempotency_key"
    )
    values = [*(fields.get(name) for name in PODCAST_FIELDS), idempotency_key, idempotency_key]
    with dict_cursor(conn) as cur:
        cur.execute(
            f"""
            INSERT INTO podcasts ({", ".join(PODCAST_FIELDS)}, idempotency_key)
            VALUES ({", ".join(["%s"] * len(PODCAST_FIELDS))}, %s)
            ON CONFLICT ({target}) DO UPDATE SET
                {", ".join(f"{n} = EXCLUDED.{n}" for n in PODCAST_FIELDS[1:])}, deleted_at = NULL
            RETURNING {PODCAST_COLUMNS}, transcript, content_hash,
                      coalesce(xmax = 0 OR idempotency_key = %s, false) AS created
            """,
            values,
        )
        row = cur.fetchone()
    return row, row.pop("created")


def get(conn, podcast_id: int) -> PodcastRow | None:
    with dict_cursor(conn) as cur:
        cur.execute(f"SELECT {PODCAST_COLUMNS} FROM podcasts WHERE id = %s AND {LIVE}", (podcast_id,))
        return cur.fetchone()


class ListedPodcast(TypedDict):
    """An episode as a listener's shelf shows it (no transcript, no enrichment error)."""

    id: int
    external_id: str | None
    title: str
    description: str | None
    summary: str | None
    category: str | None
    language: str | None
    duration_seconds: int | None
    published_at: datetime | None
    status: str


LISTED_COLUMNS = (
    "id, external_id, title, description, summary, category, language, duration_seconds, published_at, status"
)
# The filters of the catalogue's shelves, pages and search (`schemas.CatalogueFilters`), on the
# alias `p`, with the parameters `filter_params` gives.
FILTERS = """
    (%(category)s::text IS NULL OR p.category = %(category)s)
    AND (%(language)s::text IS NULL OR p.language = %(language)s)
    AND (%(max_duration_seconds)s::int IS NULL OR p.duration_seconds <= %(max_duration_seconds)s)
    AND (%(published_after)s::timestamptz IS NULL OR p.published_at > %(published_after)s)
"""


@dataclass(frozen=True)
class Filters:
    """What a page, a search or a shelf may be narrowed to (the API's `schemas.CatalogueFilters`)."""

    category: str | None = None
    language: str | None = None
    max_duration_seconds: int | None = None
    published_after: datetime | None = None


def filter_params(filters: Filters | None) -> dict[str, Any]:
    return asdict(filters or Filters())


def listed(conn, podcast_ids: Sequence[int]) -> dict[int, ListedPodcast]:
    """These episodes (whatever their status), by id."""
    with dict_cursor(conn) as cur:
        cur.execute(
            f"SELECT {LISTED_COLUMNS} FROM podcasts WHERE id = ANY(%s) AND {LIVE}", (list(podcast_ids),)
        )
        return {row["id"]: row for row in cur.fetchall()}


def shelf(conn, filters: Filters, limit: int, before_id: int | None) -> list[ListedPodcast]:
    """Up to `limit` ready episodes passing `filters`, most recently added first, below `before_id`."""
    with dict_cursor(conn) as cur:
        cur.execute(
            f"""
            SELECT {LISTED_COLUMNS} FROM podcasts p
            WHERE p.status = 'ready' AND (%(before_id)s::bigint IS NULL OR p.id < %(before_id)s) AND {FILTERS}
            ORDER BY p.id DESC LIMIT %(limit)s
            """,
            {**filter_params(filters), "before_id": before_id, "limit": limit},
        )
        return cur.fetchall()


def categories(conn) -> list[tuple[str, int]]:
    """(category, ready episodes) for every category, the largest first."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT category, count(*) FROM podcasts WHERE status = 'ready' AND category IS NOT NULL"
            " GROUP BY category ORDER BY count(*) DESC, category"
        )
        return cur.fetchall()


def has_category(conn, category: str) -> bool:
    with conn.cursor() as cur:
        cur.execute(f"SELECT EXISTS (SELECT 1 FROM podcasts WHERE category = %s AND {LIVE})", (category,))
        return cur.fetchone()[0]


def update(conn, podcast_id: int, fields: dict[str, Any]) -> StoredPodcast | None:
    """Change some fields of a podcast; the trigger decides whether it needs enriching again."""
    assignments = ", ".join(f"{name} = %({name})s" for name in fields if name in PODCAST_FIELDS)
    with dict_cursor(conn) as cur:
        cur.execute(
            f"UPDATE podcasts SET {assignments}, updated_at = now() WHERE id = %(podcast_id)s AND {LIVE}"
            f" RETURNING {PODCAST_COLUMNS}, transcript, content_hash",
            {**fields, "podcast_id": podcast_id},
        )
        return cur.fetchone()


class Kept(TypedDict):
    """What a deleted episode's tombstone keeps pointing at."""

    feedback_events: int
    suggestions: int


def delete(conn, podcast_id: int) -> Kept | None:
    """Make the episode a tombstone (see sql/010_tombstones.sql): its text, summary and vector go,
    its history stays. None if there is no such episode (or it is deleted already)."""
    with dict_cursor(conn) as cur:
        cur.execute(
            f"""
            UPDATE podcasts SET status = 'deleted', deleted_at = now(), updated_at = now(), transcript = '',
                   description = NULL, summary = NULL, embedding = NULL, enriched_hash = NULL
            WHERE id = %(id)s AND {LIVE}
            RETURNING (SELECT count(*) FROM feedback_events WHERE podcast_id = %(id)s) AS feedback_events,
                      (SELECT count(*) FROM suggested_podcasts WHERE podcast_id = %(id)s) AS suggestions
            """,
            {"id": podcast_id},
        )
        return cur.fetchone()


def save_enrichments(conn, done: Sequence[tuple[ToEnrich, str, np.ndarray]]) -> list[PodcastRow]:
    """Store (podcast, summary, vector) in one statement, except where the text changed
    meanwhile (that one stays pending); returns the rows saved."""
    with dict_cursor(conn) as cur:
        return psycopg2.extras.execute_values(
            cur,
            f"""
            UPDATE podcasts SET summary = v.new_summary, embedding = v.new_embedding, status = 'ready',
                                last_error = NULL, enriched_hash = content_hash, updated_at = now()
            FROM (VALUES %s) AS v (podcast_id, enriched_from, new_summary, new_embedding)
            WHERE id = v.podcast_id AND content_hash = v.enriched_from
            RETURNING {PODCAST_COLUMNS}
            """,
            [(p["id"], p["content_hash"], summary, vector) for p, summary, vector in done],
            template="(%s::bigint, %s, %s, %s::vector)",
            fetch=True,
        )


def lease(conn, podcast_ids: Sequence[int], lease_seconds: int = 120) -> None:
    """Keep the worker off podcasts this process is enriching itself (until the lease expires)."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE podcasts SET next_attempt_at = now() + make_interval(secs => %s)"
            " WHERE id = ANY(%s) AND status = 'pending'",
            (lease_seconds, list(podcast_ids)),
        )


def claim_pending(conn, limit: int, lease_seconds: int = 120) -> list[ToEnrich]:
    """Lease up to `limit` due pending podcasts; SKIP LOCKED lets several workers run at once.

    The lease (next_attempt_at in the future) keeps other workers off them while the AI calls
    run outside this transaction; a crash simply lets the lease expire.
    """
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            UPDATE podcasts p SET next_attempt_at = now() + make_interval(secs => %s)
            FROM (SELECT id FROM podcasts
                  WHERE status = 'pending' AND next_attempt_at <= now()
                  ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED) due
            WHERE p.id = due.id
            RETURNING p.id, p.title, p.description, p.transcript, p.content_hash
            """,
            (lease_seconds, limit),
        )
        return cur.fetchall()


def record_enrichment_failure(
    conn, podcast_ids: Sequence[int], error: str, max_attempts: int, slow_retry_seconds: float
) -> None:
    """Count the attempt, keep the error, back off exponentially: 2 s, 4 s, 8 s ... at most 10 min;
    from the `max_attempts`-th failure on (given up: `failed` in health), once per `slow_retry_seconds`."""
    with conn.cursor() as cur:
        cur.execute(
            """
            UPDATE podcasts
            SET last_error = %s,
                enrich_attempts = enrich_attempts + 1,
                next_attempt_at = now() + make_interval(secs => CASE WHEN enrich_attempts + 1 >= %s
                    THEN %s ELSE least(600, 2 ^ (enrich_attempts + 1)) END)
            WHERE id = ANY(%s) AND status = 'pending'
            """,
            (error[:500], max_attempts, slow_retry_seconds, list(podcast_ids)),
        )


def requeue_failed(conn, max_attempts: int) -> int:
    """Give the episodes the worker gave up on their fast retries again, due now; wakes the workers."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE podcasts SET enrich_attempts = 0, next_attempt_at = now()"
            " WHERE status = 'pending' AND enrich_attempts >= %s",
            (max_attempts,),
        )
        requeued = cur.rowcount
        if requeued:
            cur.execute("SELECT pg_notify(%s, 'requeued')", (CHANGES_CHANNEL,))
        return requeued


def missing_ids(conn, ids: Sequence[int]) -> list[int]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT i FROM unnest(%s::bigint[]) AS i"
            f" WHERE NOT EXISTS (SELECT 1 FROM podcasts WHERE id = i AND {LIVE}) ORDER BY i",
            (list(ids),),
        )
        return [row[0] for row in cur.fetchall()]


def counts(conn, max_attempts: int) -> dict[str, int]:
    """Ready and pending episodes; `failed` are pending ones the worker gave up on."""
    with dict_cursor(conn) as cur:
        cur.execute(
            "SELECT count(*) FILTER (WHERE status = 'ready') AS ready,"
            " count(*) FILTER (WHERE status = 'pending') AS pending,"
            " count(*) FILTER (WHERE status = 'pending' AND enrich_attempts >= %s) AS failed FROM podcasts",
            (max_attempts,),
        )
        return cur.fetchone()


def vectors(conn, podcast_ids: Sequence[int]) -> dict[int, np.ndarray | None]:
    """The vector of each of `podcast_ids` that exists (None while it is pending)."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT id, embedding FROM podcasts WHERE id = ANY(%s::bigint[]) AND {LIVE}",
            (list(podcast_ids),),
        )
        return dict(cur.fetchall())


VECTOR_INDEX = "podcasts_embedding_hnsw"


@contextmanager
def vector_index_built_after(maintenance_work_mem: str = "1GB") -> Iterator[None]:
    """Drop the HNSW index for a large load and build it again after (even if the load fails):
    one build over every row is several times faster than as many single inserts into the
    graph. Meanwhile searches scan the table exactly: slower, never wrong."""
    with connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (VECTOR_INDEX,))
        row = cur.fetchone()
        if row is not None:
            cur.execute(f"DROP INDEX {VECTOR_INDEX}")
    try:
        yield
    finally:
        if row is not None:
            with connection() as conn, conn.cursor() as cur:
                cur.execute("SELECT set_config('maintenance_work_mem', %s, true)", (maintenance_work_mem,))
                cur.execute(row[0])


def listen_for_changes(conn) -> None:
    """Have `conn` (autocommit) notified when episodes become pending, whoever changed them."""
    with conn.cursor() as cur:
        cur.execute(f"LISTEN {CHANGES_CHANNEL}")
