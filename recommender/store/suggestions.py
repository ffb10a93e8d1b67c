"""What was suggested to whom, and the reasons written for a listener's episodes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import psycopg2
import psycopg2.extras


class Suggestion(NamedTuple):
    podcast_id: int
    similarity: float | None
    rank: int
    reason: str
    strategy: str
    reason_source: str  # cached (written ahead) | generated (written for this request) | fallback
    features: list[float] | None = None  # what the ranker saw (`model/ranker.py`)


def insert_suggestions(conn, user_id: str, variant: str, suggestions: Sequence[Suggestion]) -> list[int]:
    """One row per suggestion, in one statement; returns the ids in the order given."""
    if not suggestions:
        return []
    with conn.cursor() as cur:
        rows = psycopg2.extras.execute_values(
            cur,
            "INSERT INTO suggested_podcasts"
            " (user_id, variant, podcast_id, similarity, rank, reason, strategy, reason_source, features)"
            " VALUES %s RETURNING id",
            [(user_id, variant, *suggestion) for suggestion in suggestions],
            fetch=True,
        )
    return [row[0] for row in rows]


class Served(NamedTuple):
    user_id: str
    podcast_id: int
    suggested_at: datetime


def served(conn, suggestion_ids: Sequence[int]) -> dict[int, Served]:
    """To whom, what and when each of `suggestion_ids` that exists was served."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, user_id, podcast_id, suggested_at FROM suggested_podcasts"
            " WHERE id = ANY(%s::bigint[])",
            (list(suggestion_ids),),
        )
        return {row[0]: Served(*row[1:]) for row in cur.fetchall()}


def written_reasons(
    conn, user_id: str, podcast_ids: Sequence[int], valid_from: datetime
) -> dict[int, tuple[str, str]]:
    """(reason, evidence key) written for this user since `valid_from`, by podcast id."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT podcast_id, reason, evidence FROM reasons"
            " WHERE user_id = %s AND podcast_id = ANY(%s::bigint[]) AND written_at >= %s",
            (user_id, list(podcast_ids), valid_from),
        )
        return {pid: (reason, evidence) for pid, reason, evidence in cur.fetchall()}


def save_reasons(
    conn, user_id: str, reasons: Sequence[tuple[int, str, str]], written_at: datetime | None = None
) -> None:
    """Store (podcast_id, evidence key, reason) for this user, replacing older ones.

    `written_at` is when the page they belong to was computed, so a profile that changed
    while the LLM was writing makes them stale rather than current."""
    with conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO reasons (user_id, podcast_id, evidence, reason, written_at) VALUES %s"
            " ON CONFLICT (user_id, podcast_id) DO UPDATE SET evidence = excluded.evidence,"
            " reason = excluded.reason, written_at = excluded.written_at",
            [(user_id, pid, key, reason, written_at) for pid, key, reason in reasons],
            template="(%s, %s, %s, %s, coalesce(%s, now()))",
        )
