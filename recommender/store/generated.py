"""Generated text stored before the check of generated text last changed, read in batches for the
worker to check again (`worker/recheck.py`), and what is done with what fails it."""

from __future__ import annotations

import json
from typing import Any

# Per kind: its rows after a key, in key order: (key, text, more) with the key as text.
BATCHES = {
    "summaries": "SELECT id::text, summary, transcript FROM podcasts"
    " WHERE summary IS NOT NULL AND id > %s::bigint ORDER BY id LIMIT %s",
    "reasons": "SELECT user_id || chr(31) || podcast_id, reason, NULL FROM reasons"
    " WHERE (user_id, podcast_id) >"
    " (split_part(%s, chr(31), 1), coalesce(nullif(split_part(%s, chr(31), 2), ''), '0')::bigint)"
    " ORDER BY user_id, podcast_id LIMIT %s",
    "interest_profiles": "SELECT id, interest_profile, NULL FROM users"
    " WHERE interest_profile IS NOT NULL AND id > %s ORDER BY id LIMIT %s",
    "topic_labels": "SELECT content_hash, label, NULL FROM topic_labels WHERE content_hash > %s"
    " ORDER BY content_hash LIMIT %s",
}
START = {"summaries": "0", "reasons": "", "interest_profiles": "", "topic_labels": ""}


def progress(conn) -> dict[str, Any] | None:
    """How far each kind was checked, and with which check (`app_meta` 'recheck'): per kind the
    key checked last, or None once all of it was."""
    with conn.cursor() as cur:
        cur.execute("SELECT value FROM app_meta WHERE key = 'recheck'")
        row = cur.fetchone()
    return None if row is None else json.loads(row[0])


def save_progress(conn, state: dict[str, Any]) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO app_meta VALUES ('recheck', %s)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (json.dumps(state),),
        )


def batch(conn, kind: str, after: str, limit: int) -> list[tuple[str, str, Any]]:
    params = (after, after, limit) if kind == "reasons" else (after, limit)
    with conn.cursor() as cur:
        cur.execute(BATCHES[kind], params)
        return cur.fetchall()


def replace_summaries(conn, summaries: dict[int, str]) -> None:
    """Serve these summaries instead (the episodes stay ready: their vectors need no change)."""
    with conn.cursor() as cur:
        for podcast_id, summary in sorted(summaries.items()):
            cur.execute("UPDATE podcasts SET summary = %s WHERE id = %s", (summary, podcast_id))


def drop_reasons(conn, keys: list[str]) -> None:
    """Forget these written reasons (`user_id chr(31) podcast_id`): their pages fall back."""
    with conn.cursor() as cur:
        cur.execute("DELETE FROM reasons WHERE user_id || chr(31) || podcast_id = ANY(%s::text[])", (keys,))


def drop_interest_profiles(conn, user_ids: list[str], events: int) -> None:
    """Forget these interest profiles; they are written again at the worker's next pass."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE users SET interest_profile = NULL, interest_embedding = NULL,"
            " events_since_profile = greatest(events_since_profile, %s) WHERE id = ANY(%s::text[])",
            (events, user_ids),
        )


def drop_topic_labels(conn, content_hashes: list[str]) -> None:
    with conn.cursor() as cur:
        cur.execute("DELETE FROM topic_labels WHERE content_hash = ANY(%s::text[])", (content_hashes,))
