"""The queue of pages to prepare ahead and the prepared pages, under a per-listener page lock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import psycopg2
import psycopg2.extras

from db_utils import dict_cursor
from recommender.store.users import User


class DuePage(TypedDict):
    user_id: str
    page_size: int
    category: str | None


class PreparedPage(TypedDict):
    current: bool  # the listener and the collaborative model are as the page was computed from
    page_size: int
    category: str | None
    variant: str
    age_seconds: float
    size: int  # items when it was stored (`items` leaves out episodes no longer ready)
    items: list[dict[str, Any]]  # as stored, with each episode's title, summary and category now


def commit_asynchronously(conn) -> None:
    """This transaction's commit returns before its WAL is flushed. For what is a log (served
    suggestions, queued pages, written reasons): a crash of the server may lose its last fraction
    of a second, never consistency, and each request saves a disk flush."""
    with conn.cursor() as cur:
        cur.execute("SET LOCAL synchronous_commit = off")


def queue(
    conn,
    user_id: str,
    page_size: int | None,
    category: str | None,
    delay: float,
    default_size: int,
    served_within_hours: float | None = None,
) -> None:
    """Ask for this user's next page to be prepared `delay` seconds from now; with
    `served_within_hours`, only if they were served a page (before this transaction's), or had one
    prepared, that lately: a walk-in's first page does not commit an LLM call to a second they may
    never ask for.

    A later request moves the time on, so a burst of activity costs one preparation. Without a
    `page_size` (activity other than a served page) the last page's size and category stay, or
    `default_size` and no category when there was none."""
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO pages_due AS d (user_id, due_at, page_size, category)
            SELECT %(user)s, now() + make_interval(secs => %(delay)s), coalesce(%(size)s, %(default)s),
                   %(category)s
            WHERE %(hours)s::float8 IS NULL
               OR EXISTS (SELECT 1 FROM suggested_podcasts WHERE user_id = %(user)s
                          AND suggested_at > now() - make_interval(secs => %(hours)s::float8 * 3600)
                          AND suggested_at < now())  -- not this transaction's own page
               OR EXISTS (SELECT 1 FROM reasons WHERE user_id = %(user)s
                          AND written_at > now() - make_interval(secs => %(hours)s::float8 * 3600))
            ON CONFLICT (user_id) DO UPDATE SET due_at = excluded.due_at,
                page_size = coalesce(%(size)s, d.page_size),
                category = CASE WHEN %(size)s::int IS NULL THEN d.category ELSE excluded.category END
            """,
            {
                "user": user_id,
                "delay": delay,
                "size": page_size,
                "default": default_size,
                "category": category,
                "hours": served_within_hours,
            },
        )


def queue_active(conn, user_ids: Sequence[str], active_hours: float, delay: float) -> None:
    """Queue the next page of those of `user_ids` who were served a page lately, at the size of
    their last page. The others are not expected back soon: preparing pages for them (say, for
    events imported in bulk) would spend LLM calls on pages nobody reads."""
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO pages_due AS d (user_id, due_at, page_size)
            SELECT DISTINCT ON (user_id) user_id, now() + make_interval(secs => %(delay)s), rank
            FROM suggested_podcasts
            WHERE user_id = ANY(%(users)s::text[])
              AND suggested_at > now() - make_interval(secs => %(window)s)
            ORDER BY user_id, suggested_at DESC, rank DESC
            ON CONFLICT (user_id) DO UPDATE SET due_at = excluded.due_at
            """,
            {"delay": delay, "users": list(user_ids), "window": active_hours * 3600},
        )


def claim_due(conn, limit: int, max_age_seconds: float) -> list[DuePage]:
    """Take up to `limit` due pages off the queue (SKIP LOCKED: several processes share it),
    the most recently due first: when the writer falls behind, the listeners active last are the
    likeliest to come back soon, and a backlog left by a busy spell does not hold up listeners
    active now. Pages due for longer than `max_age_seconds` are dropped: their listener has moved
    on (one who comes back is queued again)."""
    with dict_cursor(conn) as cur:
        cur.execute(  # rows another transaction holds are left for later: waiting could deadlock
            "DELETE FROM pages_due WHERE user_id IN (SELECT user_id FROM pages_due"
            " WHERE due_at < now() - make_interval(secs => %s) FOR UPDATE SKIP LOCKED)",
            (max_age_seconds,),
        )
        cur.execute(
            """
            DELETE FROM pages_due WHERE user_id IN (
                SELECT user_id FROM pages_due WHERE due_at <= now()
                ORDER BY due_at DESC LIMIT %s FOR UPDATE SKIP LOCKED
            ) RETURNING user_id, page_size, category
            """,
            (limit,),
        )
        return cur.fetchall()


def seconds_to_next_page(conn) -> float | None:
    """How long until the next queued page is due (0 if one is due now; None if none is queued)."""
    with conn.cursor() as cur:
        cur.execute("SELECT greatest(extract(epoch FROM min(due_at) - now()), 0) FROM pages_due")
        [seconds] = cur.fetchone()
    return None if seconds is None else float(seconds)


PAGE_LOCK_CLASS = 4711  # first key of the per-user pg_advisory_xact_lock(int, int) of begin_page


# Suggestions older than this were committed before any page being prepared now was computed.
PREPARED_LOOKBACK = "1 hour"


def begin_page(conn, user_id: str) -> None:
    """Start a transaction that serves or stores this user's page: it commits asynchronously
    (see `commit_asynchronously`) and holds the user's page lock until it ends, so pages are
    served and stored one at a time and a page computed ahead is never stored over suggestions
    it did not see. One statement: this is on every request's path."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT set_config('synchronous_commit', 'off', true), pg_advisory_xact_lock(%s, hashtext(%s))",
            (PAGE_LOCK_CLASS, user_id),
        )


def newest_suggestion(conn, user_id: str) -> int:
    """The id of the user's newest suggestion (0 if none lately): a page computed now and stored
    later is stored only if none newer was served meanwhile."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT coalesce(max(id), 0) FROM suggested_podcasts"
            f" WHERE user_id = %s AND suggested_at > now() - interval '{PREPARED_LOOKBACK}'",
            (user_id,),
        )
        return cur.fetchone()[0]


def store_prepared(
    conn,
    user: User,
    page_size: int,
    category: str | None,
    variant: str,
    items: list[dict[str, Any]],
    seen: int | None = None,
) -> bool:
    """Keep a page computed from `user` (as `users.get` read it) for their next request, unless the
    listener changed since or, when `seen` is given (the page was computed in an earlier
    transaction, see `newest_suggestion`), was served a suggestion newer than `seen`. Call after
    `begin_page`. Returns whether it was stored."""
    with conn.cursor() as cur:
        cur.execute(
            f"""
            INSERT INTO prepared_pages AS pp
                (user_id, user_version, model_version, computed_at, page_size, category, variant, items)
            SELECT %(u)s, %(version)s::xid, %(model)s::xid, %(at)s, %(size)s, %(category)s, %(variant)s,
                   %(items)s
            WHERE EXISTS (SELECT 1 FROM users WHERE id = %(u)s AND xmin = %(version)s::xid)
              AND (%(seen)s::bigint IS NULL OR NOT EXISTS (
                  SELECT 1 FROM suggested_podcasts WHERE user_id = %(u)s AND id > %(seen)s
                    AND suggested_at > %(at)s - interval '{PREPARED_LOOKBACK}'))
            ON CONFLICT (user_id) DO UPDATE SET user_version = excluded.user_version,
                model_version = excluded.model_version, computed_at = excluded.computed_at,
                page_size = excluded.page_size, category = excluded.category, variant = excluded.variant,
                items = excluded.items
            WHERE pp.computed_at <= excluded.computed_at
            """,
            {
                "u": user.id,
                "version": user.version,
                "model": user.model_version,
                "at": user.read_at,
                "seen": seen,
                "size": page_size,
                "category": category,
                "variant": variant,
                "items": psycopg2.extras.Json(items),
            },
        )
        return cur.rowcount == 1


def take_prepared(conn, user_id: str) -> PreparedPage | None:
    """Remove the user's prepared page and return it with whether the listener and the
    collaborative model are as it was computed from (`current`) and its episodes as they are now:
    only those still ready, with their current title, summary and category. Call after
    `begin_page`."""
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            WITH page AS (DELETE FROM prepared_pages WHERE user_id = %s RETURNING *)
            SELECT page.user_version = (SELECT xmin FROM users WHERE id = page.user_id)
                   AND page.model_version = (SELECT xmin FROM collaborative_model) AS current,
                   page.page_size, page.category, page.variant,
                   extract(epoch FROM now() - page.computed_at) AS age_seconds,
                   jsonb_array_length(page.items) AS size,
                   (SELECT coalesce(jsonb_agg(i.item || jsonb_build_object(
                               'title', p.title, 'summary', p.summary, 'category', p.category)
                           ORDER BY i.n), '[]')
                    FROM jsonb_array_elements(page.items) WITH ORDINALITY AS i (item, n)
                    JOIN podcasts p ON p.id = (i.item ->> 'podcast_id')::bigint AND p.status = 'ready'
                   ) AS items
            FROM page
            """,
            (user_id,),
        )
        return cur.fetchone()


def purge_prepared(conn, max_age_seconds: float) -> None:
    """Drop pages prepared for listeners who did not come back for them."""
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM prepared_pages WHERE computed_at < now() - make_interval(secs => %s)",
            (max_age_seconds,),
        )
