"""Feedback events, stored once per (user_id, event_id)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TypedDict

import psycopg2
import psycopg2.extras

from db_utils import dict_cursor
from recommender.model.events import JUDGEMENTS, PairEvent


class NewEvent(TypedDict):
    user_id: str
    podcast_id: int
    suggestion_id: int | None
    event: str
    value: float | None
    weight: float  # how far it moves the listener toward (+) or away from (-) the episode
    event_id: str | None  # the caller's id: an event stored with it once is not stored again
    occurred_at: datetime | None  # when the listener did it (None: now)


class EventRow(NewEvent):
    id: int
    occurred_at: datetime  # type: ignore[misc]  # stored: never None
    created_at: datetime


FEEDBACK_FIELDS = tuple(NewEvent.__annotations__)
# created_at is NULL for the events stored before migration 013: they happened when stored.
FEEDBACK_COLUMNS = (
    "id, user_id, podcast_id, suggestion_id, event, value, weight, event_id, occurred_at,"
    " coalesce(created_at, occurred_at) AS created_at"
)
# An event without a time of its own happened when it is stored.
INSERT_ROW = f"({', '.join('coalesce(%s, now())' if f == 'occurred_at' else '%s' for f in FEEDBACK_FIELDS)})"


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
                template=INSERT_ROW,
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


class ExportedEvent(TypedDict):
    """An event as `POST /api/feedback` and `cli.py import-events` take it."""

    user_id: str
    podcast_id: int
    event: str
    value: float | None
    suggestion_id: int | None
    event_id: str | None
    occurred_at: datetime


EXPORT_FIELDS = tuple(ExportedEvent.__annotations__)


def exported(conn, since: datetime) -> Iterator[ExportedEvent]:
    """Every event that happened since `since`, in the order they were stored, streamed."""
    with conn.cursor(name="export_events", cursor_factory=psycopg2.extras.DictCursor) as cur:
        cur.execute(
            f"SELECT {', '.join(EXPORT_FIELDS)} FROM feedback_events WHERE occurred_at >= %s ORDER BY id",
            (since,),
        )
        for row in cur:
            yield ExportedEvent(**row)


def engagements(conn, pairs: Sequence[tuple[str, int]]) -> dict[tuple[str, int], list[PairEvent]]:
    """Per (user_id, podcast_id): the listener's stored events on it, in the order they happened."""
    if not pairs:
        return {}
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT f.user_id, f.podcast_id, f.weight, f.event = ANY(%s), f.occurred_at
            FROM feedback_events f JOIN unnest(%s::text[], %s::bigint[]) AS p(user_id, podcast_id)
                 USING (user_id, podcast_id)
            ORDER BY f.occurred_at, f.id
            """,
            (list(JUDGEMENTS), [u for u, _ in pairs], [p for _, p in pairs]),
        )
        found: dict[tuple[str, int], list[PairEvent]] = {}
        for user_id, podcast_id, weight, judged, at in cur:
            found.setdefault((user_id, podcast_id), []).append(PairEvent(float(weight), judged, at))
        return found
