"""The data layer: every SQL statement of the app, one module per concern. Functions take a
connection (`db_utils.connection()`) and read or write rows; the maths is elsewhere (`model/`)."""

from recommender.store import (
    analytics,
    candidates,
    collaborative,
    factors,
    feedback,
    generated,
    idempotency,
    pages,
    podcasts,
    ranker,
    suggestions,
    users,
    vectors,
)

__all__ = [
    "analytics",
    "candidates",
    "collaborative",
    "factors",
    "feedback",
    "generated",
    "idempotency",
    "pages",
    "podcasts",
    "ranker",
    "suggestions",
    "users",
    "vectors",
]
