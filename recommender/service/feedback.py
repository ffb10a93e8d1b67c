"""Feedback events: stored, attributed to the suggestion they answer, and folded into the
listeners' profiles (how much each weighs: `model/events.py`).

One event and a thousand take the same path: one transaction, one query each for the users, the
episodes and the suggestions they name, one insert, then each user's new events folded into
their feedback vector and profile once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

import db_utils
from config import get_settings
from recommender import store
from recommender.model.events import JUDGEMENTS, PairEvent, event_weight, faded_engagement
from recommender.schemas import CLOCK_SKEW, FeedbackRequest
from recommender.service import idempotency, page_writer, profiles
from recommender.service.database import require_database
from recommender.service.errors import InvalidRequest, Mismatch, NotFound, ServiceError
from recommender.store.feedback import EventRow, NewEvent
from recommender.store.suggestions import Served

Outcome = tuple[EventRow, bool] | ServiceError  # (stored event, created) or why it was not stored


def record_feedback(request: FeedbackRequest) -> tuple[EventRow, bool]:
    """Store one event and fold it into the user's profile. Returns (event, created); a
    repeated `event_id` is not re-applied. Raises `ServiceError` when it cannot be stored."""
    [outcome] = record_feedback_bulk([request])
    if isinstance(outcome, ServiceError):
        raise outcome
    return outcome


def record_feedback_bulk(requests: Sequence[FeedbackRequest]) -> list[Outcome]:
    """Store the events and fold each user's new ones into their profile, in one transaction.

    Returns, per request and in order, (event, created) or the `ServiceError` it failed with; a
    failed event does not stop the others. An `(user_id, event_id)` stored before, or earlier in
    `requests`, is neither stored nor applied again: its stored event comes back, created False.
    The users' rows are locked first, in id order: concurrent requests for the same users apply
    one after the other, lose nothing and cannot deadlock.
    """
    if not requests:
        return []
    require_database()
    for attempt in db_utils.transactions():
        with attempt as conn:
            return _store(conn, requests)
    raise AssertionError("unreachable: the last attempt raises")


def _store(conn, requests: Sequence[FeedbackRequest]) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(requests)
    users = store.users.lock(conn, sorted({r.user_id for r in requests}))
    vectors = store.podcasts.vectors(conn, sorted({r.podcast_id for r in requests}))
    suggestions = {r.suggestion_id for r in requests if r.suggestion_id is not None}
    served = store.suggestions.served(conn, sorted(suggestions))
    valid = []
    for index, request in enumerate(requests):
        outcomes[index] = _refusal(request, users, vectors, served)
        if outcomes[index] is None:
            valid.append(index)
    events = [_event(requests[i], i) for i in valid]
    pairs = sorted({(event["user_id"], event["podcast_id"]) for event in events})
    before = store.feedback.engagements(conn, pairs)
    after = {pair: list(weights) for pair, weights in before.items()}
    new_events: Counter[str] = Counter()
    for index, event, (row, created) in zip(valid, events, store.feedback.insert(conn, events), strict=True):
        outcomes[index] = row, created
        if created:
            new_events[event["user_id"]] += 1
            pair = (event["user_id"], event["podcast_id"])
            after.setdefault(pair, []).append(
                PairEvent(event["weight"], event["event"] in JUDGEMENTS, row["occurred_at"])
            )
    # What each episode's events add up to, faded from when the latest happened, moved by this
    # much: a 1-star rating after a listen takes the listen's pull back, rather than adding its
    # own -1 to it; a like imported from a year ago adds what is left of it after a year.
    now, half_life = datetime.now(UTC), get_settings().feedback_half_life_days
    deltas: dict[str, np.ndarray] = {}  # per user: the sum of the moves x the episodes' vectors
    for (user_id, podcast_id), pair_events in after.items():
        move = faded_engagement(pair_events, now, half_life) - faded_engagement(
            before.get((user_id, podcast_id), []), now, half_life
        )
        vector = vectors[podcast_id]
        if move and vector is not None:  # a pending episode counts, but has no direction yet
            deltas[user_id] = deltas[user_id] + move * vector if user_id in deltas else move * vector
    for user_id in sorted(new_events):
        profiles.add_feedback(conn, user_id, deltas.get(user_id), new_events[user_id])
    page_writer.queue_next_pages(conn, sorted(new_events))
    return [outcome for outcome in outcomes if outcome is not None]


def _event(request: FeedbackRequest, index: int) -> NewEvent:
    """The event to store. One without an event_id, sent with an Idempotency-Key, gets the key's
    (`idempotency.row_key`): the retry of a request that died after storing it stores it once."""
    fields = request.model_dump()
    fields["event_id"] = fields["event_id"] or idempotency.row_key(index)
    return NewEvent(**fields, weight=event_weight(request.event, request.value))


def _refusal(
    request: FeedbackRequest,
    users: set[str],
    vectors: dict[int, Any],
    served: dict[int, Served],
) -> ServiceError | None:
    """Why this event cannot be stored, if it cannot."""
    if request.user_id not in users:
        return NotFound("user_not_found", f"no user {request.user_id!r}")
    if request.podcast_id not in vectors:
        return NotFound("podcast_not_found", f"no podcast {request.podcast_id}")
    if request.suggestion_id is None:
        return None
    suggestion, pair = served.get(request.suggestion_id), (request.user_id, request.podcast_id)
    if suggestion is None or (suggestion.user_id, suggestion.podcast_id) != pair:
        return Mismatch(
            "suggestion_mismatch", "suggestion_id is not a suggestion of this podcast to this user"
        )
    if request.occurred_at is not None and request.occurred_at < suggestion.suggested_at - CLOCK_SKEW:
        return InvalidRequest(
            "occurred_before_suggestion",
            f"occurred_at {request.occurred_at.isoformat()} is before suggestion {request.suggestion_id}"
            f" was served ({suggestion.suggested_at.isoformat()}): an event answers a suggestion after it",
        )
    return None
