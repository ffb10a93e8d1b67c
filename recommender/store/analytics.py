"""What the loop is judged by: suggestions, events and LLM calls, grouped; the export."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg2.extras

from db_utils import DictCursor, dict_cursor

# A suggestion (`s`) is engaged when a positive event (a like, complete, listen, click, a rating
# over 3) was attributed to it: the one rule of analytics, the dashboard and the export.
ENGAGED = "EXISTS (SELECT 1 FROM feedback_events f WHERE f.suggestion_id = s.id AND f.weight > 0)"


def count_ai_calls(conn, purpose: str, calls: int = 1) -> None:
    """Add to today's count of LLM calls made for `purpose` (reasons, summaries, profiles)."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO ai_calls (day, purpose, calls) VALUES (current_date, %s, %s)"
            " ON CONFLICT (day, purpose) DO UPDATE SET calls = ai_calls.calls + excluded.calls",
            (purpose, calls),
        )


def suggestion_figures(conn, since: datetime) -> list[dict[str, Any]]:
    """Suggestions, mean similarity and engaged suggestions (with a positive attributed event),
    overall and per variant, per day and per rank. `grouped_by` tells which row is which."""
    with dict_cursor(conn) as cur:
        cur.execute(
            f"""
            WITH s AS (
                SELECT s.variant, s.rank, s.similarity, (s.suggested_at AT TIME ZONE 'UTC')::date AS day,
                       {ENGAGED} AS engaged
                FROM suggested_podcasts s WHERE s.suggested_at >= %s
            )
            SELECT CASE GROUPING(variant, day, rank) WHEN 7 THEN 'all' WHEN 3 THEN 'variant'
                        WHEN 5 THEN 'day' ELSE 'rank' END AS grouped_by,
                   variant, day, rank, count(*) AS suggestions, avg(similarity) AS average_similarity,
                   count(*) FILTER (WHERE engaged) AS engaged
            FROM s GROUP BY GROUPING SETS ((), (variant), (day), (rank))
            ORDER BY grouped_by, variant, day, rank
            """,
            (since,),
        )
        return cur.fetchall()


def ai_call_figures(conn, since: datetime) -> list[dict[str, Any]]:
    """LLM calls per day and purpose since the day of `since`."""
    with dict_cursor(conn) as cur:
        cur.execute(
            "SELECT day, purpose, calls FROM ai_calls WHERE day >= (%s AT TIME ZONE 'UTC')::date"
            " ORDER BY day, purpose",
            (since,),
        )
        return cur.fetchall()


def event_figures(conn, since: datetime) -> list[dict[str, Any]]:
    """Counts of each event kind, overall and per variant of the suggestion they answer."""
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            SELECT s.variant, f.event, count(*) AS events
            FROM feedback_events f LEFT JOIN suggested_podcasts s ON s.id = f.suggestion_id
            WHERE f.occurred_at >= %s
            GROUP BY GROUPING SETS ((f.event), (s.variant, f.event))
            """,
            (since,),
        )
        return cur.fetchall()


def engaged_podcasts(conn, since: datetime, limit: int = 100) -> list[dict[str, Any]]:
    """The episodes with the most positive engagement since `since`, with their vectors."""
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            SELECT p.id AS podcast_id, p.title, p.category, p.embedding, sum(f.weight) AS engagement
            FROM feedback_events f JOIN podcasts p ON p.id = f.podcast_id
            WHERE f.occurred_at >= %s AND f.weight > 0 AND p.status = 'ready'
            GROUP BY p.id ORDER BY engagement DESC LIMIT %s
            """,
            (since, limit),
        )
        rows = cur.fetchall()
    for row in rows:
        row["engagement"] = float(row["engagement"])
    return rows


def suggestions_with_outcomes(conn, since: datetime) -> Iterator[dict[str, Any]]:
    """Every suggestion since `since` with the events attributed to it, streamed from the server."""
    with conn.cursor(name="export_suggestions", cursor_factory=DictCursor) as cur:
        cur.execute(
            f"""
            SELECT s.id AS suggestion_id, s.user_id, s.podcast_id, p.title, s.variant, s.strategy, s.rank,
                   s.similarity, s.reason, s.reason_source, s.suggested_at,
                   coalesce(json_agg(json_build_object('event', f.event, 'value', f.value,
                                                       'weight', f.weight, 'at', f.occurred_at)
                                     ORDER BY f.occurred_at) FILTER (WHERE f.id IS NOT NULL), '[]') AS events,
                   CASE WHEN {ENGAGED} THEN 'positive'
                        WHEN bool_or(f.weight < 0) THEN 'negative' ELSE 'none' END AS outcome
            FROM suggested_podcasts s JOIN podcasts p ON p.id = s.podcast_id
            LEFT JOIN feedback_events f ON f.suggestion_id = s.id
            WHERE s.suggested_at >= %s
            GROUP BY s.id, p.title ORDER BY s.id
            """,
            (since,),
        )
        yield from cur


def daily_rates(conn, since: datetime) -> list[dict[str, Any]]:
    """Suggestions and engaged ones per UTC day and variant (`rank` None), and per rank."""
    with dict_cursor(conn) as cur:
        cur.execute(
            f"""
            SELECT (s.suggested_at AT TIME ZONE 'UTC')::date AS day, s.variant, s.rank,
                   count(*) AS suggestions, count(*) FILTER (WHERE {ENGAGED}) AS engaged
            FROM suggested_podcasts s WHERE s.suggested_at >= %s
            GROUP BY GROUPING SETS ((day, s.variant), (s.rank))
            """,
            (since,),
        )
        return cur.fetchall()


def daily_events(conn, since: datetime) -> list[dict[str, Any]]:
    """Events and positive ones per UTC day."""
    with dict_cursor(conn) as cur:
        cur.execute(
            "SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS events,"
            " count(*) FILTER (WHERE weight > 0) AS positive"
            " FROM feedback_events WHERE occurred_at >= %s GROUP BY 1",
            (since,),
        )
        return cur.fetchall()


def topic_labels(conn, content_hashes: list[str]) -> dict[str, str]:
    """The labels written before for these clusters, by content hash."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT content_hash, label FROM topic_labels WHERE content_hash = ANY(%s::text[])",
            (content_hashes,),
        )
        return dict(cur.fetchall())


def save_topic_labels(conn, labels: dict[str, str]) -> None:
    with conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO topic_labels (content_hash, label) VALUES %s ON CONFLICT (content_hash) DO NOTHING",
            sorted(labels.items()),
        )


def purge_topic_labels(conn, days: float) -> None:
    """Drop the labels of clusters nobody asked about lately (they are written again if needed)."""
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM topic_labels WHERE labelled_at < now() - make_interval(secs => %s)", (days * 86400,)
        )
