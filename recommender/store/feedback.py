"""Feedback events, stored once per (user_id, event_id)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypedDict

import psycopg2
import psycopg2.extras

from db_utils import dict_cursor
from recommender.model.events import JUDGEMENTS


class NewEvent(TypedDict):
    user_id: str
    podcast_id: int
    suggestion_id: int | None
    event: str
    value: float | None
    weight: float  # how far it moves the listener toward (+) or away from (-) the episode
    event_id: str | None  # the caller's id: an event stored with it once is not stored again


class EventRow(NewEvent):
    id: int
    created_at: datetime


FEEDBACK_FIELDS = tuple(NewEvent.__annotations__)
FEEDBACK_COLUMNS = "id, user_id, podcast_id, suggestion_id, event, value, weight, event_id, created_at"


def insert(conn, events: Sequence[NewEvent]) -> list[tuple[EventRow, bool]]:
    """Store the events in one statement. Returns (row, created) per event, in order.

    An `(user_id, event_id)` stored before, or earlier in `events`, is not stored again: its
    stored row comes back with created False. Events without an `event_id` are always new."""
    keys = [(event["user_id"], event["event_id"]) for event in events]
    seen: set[tuple[str, str]] = set()
    new = []  # the first event with each (user_id, event_id), and every one without an event_id
    for index, key in enumerate(keys):
        if key[1] is None or key not in seen:
            seen.add(key)
            new.append(index)
    results: dict[int, tuple[EventRow, bool]] = {}
    with dict_cursor(conn) as cur:
        inserted = []
        if new:
            inserted = psycopg2.extras.execute_values(
                cur,
                f"INSERT INTO feedback_events ({', '.join(FEEDBACK_FIELDS)}) VALUES %s"
                f" ON CONFLICT (user_id, event_id) DO NOTHING RETURNING {FEEDBACK_COLUMNS}",
                [tuple(events[i][name] for name in FEEDBACK_FIELDS) for i in new],
                page_size=len(new),
                fetch=True,
            )
        # Ids are drawn in insertion order: the inserted rows, by id, are the new events in
        # order, less those whose event_id was stored before.
        created = {(row["user_id"], row["event_id"]) for row in inserted}
        stored_now = [i for i in new if keys[i][1] is None or keys[i] in created]
        for index, row in zip(stored_now, sorted(inserted, key=lambda r: r["id"]), strict=True):
            if (row["user_id"], row["event_id"]) != keys[index]:
                raise RuntimeError("inserted feedback rows came back out of order")
            results[index] = row, True
        repeated = {keys[i] for i in range(len(events)) if i not in results}
        if repeated:
            users, event_ids = zip(*repeated, strict=True)
            cur.execute(
                f"SELECT {FEEDBACK_COLUMNS} FROM feedback_events WHERE (user_id, event_id) IN"
                " (SELECT * FROM unnest(%s::text[], %s::text[]))",
                (list(users), list(event_ids)),
            )
            stored = {(row["user_id"], row["event_id"]): row for row in cur.fetchall()}
            for index in range(len(events)):
                if index not in results:
                    results[index] = dict(stored[keys[index]]), False
    return [results[index] for index in range(len(events))]


def engagements(conn, pairs: Sequence[tuple[str, int]]) -> dict[tuple[str, int], list[tuple[float, bool]]]:
    """Per (user_id, podcast_id): the listener's stored events on it, oldest first, as (weight,
    is a judgement) for `model.events.net_engagement`."""
    if not pairs:
        return {}
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT f.user_id, f.podcast_id, f.weight, f.event = ANY(%s)
            FROM feedback_events f JOIN unnest(%s::text[], %s::bigint[]) AS p(user_id, podcast_id)
                 USING (user_id, podcast_id)
            ORDER BY f.created_at, f.id
            """,
            (list(JUDGEMENTS), [u for u, _ in pairs], [p for _, p in pairs]),
        )
        found: dict[tuple[str, int], list[tuple[float, bool]]] = {}
        for user_id, podcast_id, weight, judged in cur:
            found.setdefault((user_id, podcast_id), []).append((float(weight), judged))
        return found
