"""Listeners: their history, profile vectors, feedback vector and generated interest profile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict

import numpy as np

from db_utils import dict_cursor
from recommender.model.profiles import ProfileParts
from recommender.store.vectors import binary, from_binary


@dataclass(frozen=True, eq=False)
class User:
    """A listener's profile and texts, and what a page computed from them depends on: `version`
    (the row's xmin) changes with any write to it, `model_version` with the collaborative model."""

    id: str
    name: str | None
    listening_history: str | None
    interest_profile: str | None
    embedding: np.ndarray | None  # the learned profile (the `loop` variant's)
    history_profile: np.ndarray | None  # the stated history and listens (`history_only`'s)
    reasons_valid_from: datetime  # reasons written before then rest on an older history
    read_at: datetime
    version: str
    model_version: str | None


class HistorySummary(TypedDict):
    """What `update_user_history` answers: never the history text itself."""

    user_id: str
    name: str | None
    has_history: bool
    profile_status: str  # pending while the history's vector is missing
    listened_count: int
    created_at: datetime
    updated_at: datetime


class ProfileRequest(TypedDict):
    """A listener whose interest profile is due, with what to write it from."""

    id: str
    listening_history: str | None
    events_since_profile: int
    liked_titles: list[str]
    disliked_titles: list[str]


def upsert_history(
    conn,
    user_id: str,
    name: str | None,
    history: str | None,
    history_embedding: np.ndarray | None,
    listened_ids: Sequence[int],
    listened_at: datetime | None = None,
) -> bool:
    """Create or update the user and add listens, which happened at `listened_at` (None: now; a
    listen stored before keeps its time); returns whether the user is new. Rebuild the profile
    after (`service.profiles.refresh`), in the same transaction."""
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            INSERT INTO users AS u (id, name, listening_history) VALUES (%s, %s, %s)
            ON CONFLICT (id) DO UPDATE SET
                name = COALESCE(EXCLUDED.name, u.name),
                listening_history = COALESCE(EXCLUDED.listening_history, u.listening_history),
                updated_at = now()
            RETURNING (xmax = 0) AS created
            """,
            (user_id, name, history),
        )
        created = cur.fetchone()["created"]
        if history is not None:  # new text: its vector, or NULL (pending) if the AI failed
            cur.execute(
                "UPDATE users SET history_embedding = %s, reasons_valid_from = now() WHERE id = %s",
                (history_embedding, user_id),
            )
        if listened_ids:
            cur.execute(
                "INSERT INTO user_listens (user_id, podcast_id, occurred_at)"
                " SELECT %s, unnest(%s::bigint[]), coalesce(%s, now()) ON CONFLICT DO NOTHING",
                (user_id, list(listened_ids), listened_at),
            )
    return created


def history_summary(conn, user_id: str) -> HistorySummary:
    with dict_cursor(conn) as cur:
        cur.execute(
            "SELECT"
            " id AS user_id, name, listening_history IS NOT NULL AS has_history,"  # never echo the text
            " CASE WHEN listening_history IS NOT NULL AND history_embedding IS NULL"
            "      THEN 'pending' ELSE 'ready' END AS profile_status,"
            " (SELECT count(*) FROM user_listens WHERE user_id = %s) AS listened_count,"
            " created_at, updated_at FROM users WHERE id = %s",
            (user_id, user_id),
        )
        return cur.fetchone()


class OwnView(TypedDict):
    """What a listener may read of themselves (`GET /api/users/{user_id}`)."""

    user_id: str
    name: str | None
    listening_history: str | None
    interest_profile: str | None  # written by the LLM from their history and feedback
    profile_status: str
    listened_podcast_ids: list[int]
    feedback_events: int
    created_at: datetime
    updated_at: datetime


def own_view(conn, user_id: str) -> OwnView | None:
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            SELECT u.id AS user_id, u.name, u.listening_history, u.interest_profile,
                   CASE WHEN u.listening_history IS NOT NULL AND u.history_embedding IS NULL
                        THEN 'pending' ELSE 'ready' END AS profile_status,
                   ARRAY(SELECT podcast_id FROM user_listens WHERE user_id = u.id ORDER BY podcast_id)
                       AS listened_podcast_ids,
                   (SELECT count(*) FROM feedback_events WHERE user_id = u.id) AS feedback_events,
                   u.created_at, u.updated_at
            FROM users u WHERE u.id = %s
            """,
            (user_id,),
        )
        return cur.fetchone()


def profile_parts(conn, user_id: str) -> ProfileParts:
    """What the user's profile vectors are built from, with the user's row locked."""
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT u.history_embedding,
                   (SELECT avg(p.embedding) FROM user_listens l JOIN podcasts p ON p.id = l.podcast_id
                    WHERE l.user_id = u.id AND p.status = 'ready'),
                   u.interest_embedding, u.feedback_vector, extract(epoch FROM now() - u.feedback_at)::float8
            FROM users u WHERE u.id = %s FOR NO KEY UPDATE
            """,
            (user_id,),
        )
        return ProfileParts(*cur.fetchone())


def save_profiles(
    conn, user_id: str, history_profile: np.ndarray | None, embedding: np.ndarray | None
) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE users SET history_profile = %s, embedding = %s WHERE id = %s",
            (history_profile, embedding, user_id),
        )


def get(conn, user_id: str) -> User | None:
    with conn.cursor() as cur:
        cur.execute(
            f"""
            SELECT u.id, u.name, u.listening_history, u.interest_profile, {binary("u.embedding")},
                   {binary("u.history_profile")}, u.reasons_valid_from, now(), u.xmin::text,
                   (SELECT xmin::text FROM collaborative_model)
            FROM users u WHERE u.id = %s
            """,
            (user_id,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    user_id, name, history, interest, embedding, history_profile, *rest = row
    return User(user_id, name, history, interest, from_binary(embedding), from_binary(history_profile), *rest)


def delete(conn, user_id: str) -> dict[str, int] | None:
    """Remove the user and, by cascade, their listens, feedback and suggestions."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM feedback_events WHERE user_id = %s),"
            " (SELECT count(*) FROM suggested_podcasts WHERE user_id = %s)",
            (user_id, user_id),
        )
        events, suggestions = cur.fetchone()
        cur.execute("DELETE FROM users WHERE id = %s", (user_id,))
        if cur.rowcount == 0:
            return None
    return {"feedback_events": events, "suggestions": suggestions}


def lock(conn, user_ids: Sequence[str]) -> set[str]:
    """Lock the rows of those of `user_ids` that exist for this transaction; returns their ids.

    Feedback for one user is applied one transaction at a time. The rows are locked in id
    order, so transactions that lock several users each cannot deadlock one another, and as an
    update of their columns (NO KEY UPDATE): rows that merely refer to the listener (a page's
    suggestions, their foreign key) are not held up by it."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM users WHERE id = ANY(%s::text[]) ORDER BY id FOR NO KEY UPDATE", (list(user_ids),)
        )
        return {row[0] for row in cur.fetchall()}


def pending_histories(conn, limit: int) -> list[tuple[str, str]]:
    """(user id, history text) of histories whose vector is missing (the AI failed inline)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, listening_history FROM users"
            " WHERE listening_history IS NOT NULL AND history_embedding IS NULL LIMIT %s",
            (limit,),
        )
        return cur.fetchall()


def save_history_embedding(conn, user_id: str, history: str, embedding: np.ndarray) -> bool:
    """Store the vector of `history` if it is still the user's text; returns whether it was."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE users SET history_embedding = %s WHERE id = %s AND listening_history = %s",
            (embedding, user_id, history),
        )
        return cur.rowcount == 1


def feedback_state(conn, user_id: str) -> tuple[np.ndarray | None, float | None]:
    """The user's stored feedback vector and its age in seconds."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT feedback_vector, extract(epoch FROM now() - feedback_at)::float8"
            " FROM users WHERE id = %s",
            (user_id,),
        )
        return cur.fetchone()


def add_feedback(conn, user_id: str, vector: np.ndarray | None, events: int) -> None:
    """Count `events` new events and, unless None, store the feedback `vector` they made.

    Feedback never touches `user_listens`: that is the stated history, which the `history_only`
    variant ranks by, and counting a completed episode there too would count it twice."""
    counts = "feedback_count = feedback_count + %(n)s, events_since_profile = events_since_profile + %(n)s"
    with conn.cursor() as cur:
        if vector is None:
            cur.execute(f"UPDATE users SET {counts} WHERE id = %(u)s", {"n": events, "u": user_id})
        else:
            cur.execute(
                f"UPDATE users SET feedback_vector = %(v)s, feedback_at = now(), {counts} WHERE id = %(u)s",
                {"v": vector, "n": events, "u": user_id},
            )


def needing_interest_profile(conn, min_events: int, limit: int) -> list[ProfileRequest]:
    """Users with enough new feedback since their profile was written, with what to write it from."""
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            SELECT u.id, u.listening_history, u.events_since_profile,
                   ARRAY(SELECT p.title FROM feedback_events f JOIN podcasts p ON p.id = f.podcast_id
                         WHERE f.user_id = u.id AND f.weight > 0
                         GROUP BY p.id, p.title ORDER BY sum(f.weight) DESC LIMIT 12) AS liked_titles,
                   ARRAY(SELECT p.title FROM feedback_events f JOIN podcasts p ON p.id = f.podcast_id
                         WHERE f.user_id = u.id AND f.weight < 0
                         GROUP BY p.id, p.title ORDER BY sum(f.weight) LIMIT 8) AS disliked_titles
            FROM users u WHERE u.events_since_profile >= %s
            ORDER BY u.events_since_profile DESC LIMIT %s
            """,
            (min_events, limit),
        )
        return cur.fetchall()


def save_interest_profile(conn, user_id: str, text: str, embedding: np.ndarray, events_seen: int) -> None:
    """Written reasons stay valid: each rests on its evidence, which a rewritten profile (a few
    more events' worth of drift) does not make untrue. A new stated history does invalidate them."""
    with conn.cursor() as cur:
        cur.execute(
            """
            UPDATE users SET interest_profile = %s, interest_embedding = %s, interest_profile_at = now(),
                             events_since_profile = greatest(events_since_profile - %s, 0)
            WHERE id = %s
            """,
            (text, embedding, events_seen, user_id),
        )


def recent(conn, limit: int) -> list[dict[str, str]]:
    """(user_id, name) of the listeners whose history changed last."""
    with dict_cursor(conn) as cur:
        cur.execute("SELECT id AS user_id, name FROM users ORDER BY updated_at DESC, id LIMIT %s", (limit,))
        return cur.fetchall()
