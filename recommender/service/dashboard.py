"""The figures of the dashboard on GET /api/ui: the A/B read-out (engagement rate per variant and
day, and the difference between the variants with a 95 % confidence interval), engagement by
rank, suggestions and events per day, trending topics and recent listeners. Engaged means what it
means in GET /api/analytics (`store.analytics.ENGAGED`). Days are UTC days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import db_utils
from recommender import store
from recommender.model.ab_test import difference_interval
from recommender.schemas import AnalyticsQuery
from recommender.service.analytics import trending_topics
from recommender.service.database import require_database
from recommender.service.errors import InvalidRequest
from recommender.service.health import ranker_state

TREATMENT, CONTROL = "loop", "history_only"  # the loop against its holdout (model/variants.py) ...
BLEND = "blend"  # ... and against itself with the hand-set blend: what the learned ranker brings
DEFAULT_DAYS = 14
MAX_DAYS = 366
LISTENERS = 20  # the most recently active listeners, to pick from


def point(engaged: int, shown: int) -> dict[str, Any]:
    return {
        "suggestions": shown,
        "engaged": engaged,
        "engagement_rate": round(engaged / shown, 4) if shown else None,
    }


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def variant_series(rows: list[dict[str, Any]], days: list[date]) -> list[dict[str, Any]]:
    """Per variant (rows of day, variant, engaged, suggestions), its totals and one point per day;
    a day without suggestions has an engagement rate of None."""
    counts: dict[str, dict[date, tuple[int, int]]] = {}
    for row in rows:
        counts.setdefault(row["variant"], {})[row["day"]] = (row["engaged"], row["suggestions"])
    series = []
    for variant, by_day in sorted(counts.items()):
        daily = [{"day": day.isoformat(), **point(*by_day.get(day, (0, 0)))} for day in days]
        engaged, shown = sum(d["engaged"] for d in daily), sum(d["suggestions"] for d in daily)
        series.append({"variant": variant, **point(engaged, shown), "daily": daily})
    return series


def ab_test(variants: list[dict[str, Any]], control: str = CONTROL) -> dict[str, Any] | None:
    """The loop against `control`: the difference of their engagement rates, with its interval."""
    arms = {v["variant"]: (v["engaged"], v["suggestions"]) for v in variants}
    if TREATMENT not in arms or control not in arms:
        return None
    interval = difference_interval(arms[TREATMENT], arms[control])
    return {"treatment": TREATMENT, "control": control, **interval} if interval else None


def activity_series(
    suggestions: list[dict[str, Any]], events: list[dict[str, Any]], days: list[date]
) -> list[dict[str, Any]]:
    """Suggestions shown and events received (and how many of them positive) per day."""
    shown: dict[date, int] = {}
    for row in suggestions:
        shown[row["day"]] = shown.get(row["day"], 0) + row["suggestions"]
    received = {row["day"]: row for row in events}
    series = []
    for day in days:
        counts = received.get(day, {"events": 0, "positive": 0})
        series.append(
            {
                "day": day.isoformat(),
                "suggestions": shown.get(day, 0),
                "events": counts["events"],
                "positive_events": counts["positive"],
            }
        )
    return series


def figures(conn, since: datetime, today: date) -> dict[str, Any]:
    """Everything but the trending topics, from the suggestions and events since `since`."""
    rates = store.analytics.daily_rates(conn, since)
    events = store.analytics.daily_events(conn, since)
    listeners = store.users.recent(conn, LISTENERS)
    days = days_between(since.astimezone(UTC).date(), today)
    daily = [row for row in rates if row["rank"] is None]
    variants = variant_series(daily, days)
    activity = activity_series(daily, events, days)
    return {
        "since": since.isoformat(),
        "days": [day.isoformat() for day in days],
        "totals": {
            "suggestions": sum(v["suggestions"] for v in variants),
            "engaged": sum(v["engaged"] for v in variants),
            "events": sum(a["events"] for a in activity),
        },
        "variants": variants,
        "ab_test": ab_test(variants),
        "ranker_test": ab_test(variants, BLEND),
        "ranker": ranker_state(store.ranker.state(conn)),
        "by_rank": [
            {"rank": row["rank"], **point(row["engaged"], row["suggestions"])}
            for row in sorted((r for r in rates if r["rank"] is not None), key=lambda r: r["rank"])
        ],
        "activity": activity,
        "listeners": listeners,
    }


def dashboard(query: AnalyticsQuery) -> dict[str, Any]:
    """The dashboard since `query.since` (default: the last DEFAULT_DAYS days, today included;
    at most MAX_DAYS ago, so the daily series stay small)."""
    require_database()
    now = datetime.now(UTC)
    since = query.since or datetime.combine(now.date() - timedelta(days=DEFAULT_DAYS - 1), time(), UTC)
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    if since < now - timedelta(days=MAX_DAYS):
        raise InvalidRequest("invalid_request", f"since: at most {MAX_DAYS} days ago")
    with db_utils.connection() as conn:
        report = figures(conn, since, now.date())
        engaged = store.analytics.engaged_podcasts(conn, since)
    return {**report, "trending_topics": trending_topics(engaged)}
