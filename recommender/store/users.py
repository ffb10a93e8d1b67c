"""Listeners: their history, profile vectors, feedback vector and generated interest profile."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from config import get_settings
from db_utils import dict_cursor
from recommender.model import ranking
from recommender.store.vectors import binary, from_binary


def upsert_user_history(
    conn,
    user_id: str,
    name: str | None,
    history: str | None,
    history_embedding: np.ndarray | None,
    listened_ids: Sequence[int],
) -> dict[str, Any]:
    """Create or update the user, add listens and rebuild the profile vectors, in one transaction."""
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
                "INSERT INTO user_listens (user_id, podcast_id)"
                " SELECT %s, unnest(%s::bigint[]) ON CONFLICT DO NOTHING",
                (user_id, list(listened_ids)),
            )
        refresh_profile(conn, user_id)
        cur.execute(
            "SELECT"
            " id AS user_id, name, listening_history IS NOT NULL AS has_history,"  # never echo the text
            " CASE WHEN listening_history IS NOT NULL AND history_embedding IS NULL"
            "      THEN 'pending' ELSE 'ready' END AS profile_status,"
            " (SELECT count(*) FROM user_listens WHERE user_id = %s) AS listened_count,"
            " created_at, updated_at FROM users WHERE id = %s",
            (user_id, user_id),
        )
        row = cur.fetchone()
    row["created"] = created
    return row


def refresh_profile(conn, user_id: str) -> None:
    """Rebuild both profile vectors from their parts, with the user's row locked.

    `history_profile` is the history text plus the mean of the listened episodes (what the
    `history_only` variant ranks by); `embedding` adds the generated interest profile and the
    decayed feedback vector (what the learning `loop` variant ranks by).
    """
    settings = get_settings()
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            SELECT u.history_embedding, u.interest_embedding, u.feedback_vector,
                   extract(epoch FROM now() - u.feedback_at) AS feedback_age,
                   (SELECT avg(p.embedding) FROM user_listens l JOIN podcasts p ON p.id = l.podcast_id
                    WHERE l.user_id = u.id AND p.status = 'ready') AS listened_mean
            FROM users u WHERE u.id = %s FOR UPDATE
            """,
            (user_id,),
        )
        parts = cur.fetchone()
        history_profile = ranking.combine(parts["history_embedding"], parts["listened_mean"])
        feedback = ranking.decayed(
            parts["feedback_vector"], parts["feedback_age"], settings.feedback_half_life_days
        )
        profile = ranking.learned_profile(
            history_profile, parts["interest_embedding"], feedback, settings.feedback_weight
        )
        cur.execute(
            "UPDATE users SET history_profile = %s, embedding = %s WHERE id = %s",
            (history_profile, profile, user_id),
        )


def get_user(conn, user_id: str) -> dict[str, Any] | None:
    """The user's profile and texts, and what a page computed from them depends on: `version`
    (the row's xmin) changes with any write to it, `model_version` with the collaborative model."""
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            SELECT u.id, u.name, u.listening_history, {embedding} AS embedding,
                   {history_profile} AS history_profile, u.interest_profile, u.reasons_valid_from,
                   now() AS read_at, u.xmin::text AS version,
                   (SELECT xmin::text FROM collaborative_model) AS model_version
            FROM users u WHERE u.id = %s
            """.format(embedding=binary("u.embedding"), history_profile=binary("u.history_profile")),
            (user_id,),
        )
        user = cur.fetchone()
    if user is not None:
        user["embedding"] = from_binary(user["embedding"])
        user["history_profile"] = from_binary(user["history_profile"])
    return user


def delete_user(conn, user_id: str) -> dict[str, int] | None:
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


def lock_users(conn, user_ids: Sequence[str]) -> set[str]:
    """Lock the rows of those of `user_ids` that exist for this transaction; returns their ids.

    Feedback for one user is applied one transaction at a time. The rows are locked in id
    order, so transactions that lock several users each cannot deadlock one another."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM users WHERE id = ANY(%s::text[]) ORDER BY id FOR UPDATE", (list(user_ids),)
        )
        return {row[0] for row in cur.fetchall()}


def pending_user_histories(conn, limit: int) -> list[dict[str, Any]]:
    with dict_cursor(conn) as cur:
        cur.execute(
            "SELECT id, listening_history FROM users"
            " WHERE listening_history IS NOT NULL AND history_embedding IS NULL LIMIT %s",
            (limit,),
        )
        return cur.fetchall()


def save_history_embedding(conn, user_id: str, history: str, embedding: np.ndarray) -> None:
    """Store the vector of `history` if it is still the user's text, then rebuild the profile."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE users SET history_embedding = %s WHERE id = %s AND listening_history = %s",
            (embedding, user_id, history),
        )
        if cur.rowcount:
            refresh_profile(conn, user_id)


def apply_feedback(conn, user_id: str, delta: np.ndarray | None, events: int = 1) -> None:
    """Fold new events into the user's decayed feedback vector and rebuild the profile, once.

    `delta` is the sum of weight * episode vector over the events (None if none of their
    episodes has a vector yet), `events` how many they are. Call with the user's row locked
    (`lock_users`) in the same transaction as `insert_feedback`.
    Feedback never touches `user_listens`: that is the stated history, which the `history_only`
    variant ranks by, and counting a completed episode there too would count it twice.
    """
    settings = get_settings()
    counts = "feedback_count = feedback_count + %(n)s, events_since_profile = events_since_profile + %(n)s"
    with conn.cursor() as cur:
        if delta is None:
            cur.execute(f"UPDATE users SET {counts} WHERE id = %(u)s", {"n": events, "u": user_id})
        else:
            cur.execute(
                "SELECT feedback_vector, extract(epoch FROM now() - feedback_at) FROM users WHERE id = %s",
                (user_id,),
            )
            stored, age = cur.fetchone()
            current = ranking.decayed(stored, age, settings.feedback_half_life_days)
            update = delta if current is None else current + delta
            cur.execute(
                f"UPDATE users SET feedback_vector = %(v)s, feedback_at = now(), {counts} WHERE id = %(u)s",
                {"v": update, "n": events, "u": user_id},
            )
    refresh_profile(conn, user_id)


def users_needing_interest_profile(conn, min_events: int, limit: int) -> list[dict[str, Any]]:
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
    refresh_profile(conn, user_id)
