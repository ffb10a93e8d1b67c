"""The figures of the dashboard on GET /api/ui: the A/B read-out (engagement rate per variant and
day, and the difference between the variants with a 95 % confidence interval), engagement by
rank, suggestions and events per day, trending topics and recent listeners. No Azure imports.

A suggestion is engaged when a positive event (like, complete, listen, click, a rating over 3)
was attributed to it, as in GET /api/analytics. Days are UTC days.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import db_utils
from recommender import store
from recommender.schemas import AnalyticsQuery
from recommender.service.analytics import trending_topics
from recommender.service.database import require_database
from recommender.service.errors import ApiError

TREATMENT, CONTROL = "loop", "history_only"  # the loop against its holdout (ranking.VARIANTS)
Z_95 = 1.959964  # the standard normal quantile of a two-sided 95 % interval
DEFAULT_DAYS = 14
MAX_DAYS = 366
LISTENERS = 20  # the most recently active listeners, to pick from

RATES_SQL = """
SELECT (s.suggested_at AT TIME ZONE 'UTC')::date AS day, s.variant, s.rank, count(*) AS suggestions,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM feedback_events f
                                      WHERE f.suggestion_id = s.id AND f.weight > 0)) AS engaged
FROM suggested_podcasts s WHERE s.suggested_at >= %s
GROUP BY GROUPING SETS ((day, s.variant), (s.rank))
"""
EVENTS_SQL = """
SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS events,
       count(*) FILTER (WHERE weight > 0) AS positive
FROM feedback_events WHERE created_at >= %s GROUP BY 1
"""
LISTENERS_SQL = "SELECT id AS user_id, name FROM users ORDER BY updated_at DESC, id LIMIT %s"


def point(engaged: int, shown: int) -> dict[str, Any]:
    return {
        "suggestions": shown,
        "engaged": engaged,
        "engagement_rate": round(engaged / shown, 4) if shown else None,
    }


def difference_interval(treatment: tuple[int, int], control: tuple[int, int]) -> dict[str, Any] | None:
    """The difference of two engagement rates, each arm given as (engaged, shown), with a 95 %
    two-proportion normal interval; None while an arm has shown nothing.

    The interval is Agresti and Caffo's: one engaged and one not-engaged suggestion added to each
    arm before the usual (Wald) interval. It keeps close to 95 % coverage on small samples and
    rates of 0 or 1, where the plain Wald interval shrinks to a width of zero."""
    (engaged_t, shown_t), (engaged_c, shown_c) = treatment, control
    if not (shown_t and shown_c):
        return None
    p_t, p_c = (engaged_t + 1) / (shown_t + 2), (engaged_c + 1) / (shown_c + 2)
    error = Z_95 * math.sqrt(p_t * (1 - p_t) / (shown_t + 2) + p_c * (1 - p_c) / (shown_c + 2))
    low, high = p_t - p_c - error, p_t - p_c + error
    return {
        "difference": round(engaged_t / shown_t - engaged_c / shown_c, 4),
        "low": round(low, 4),
        "high": round(high, 4),
        "significant": low > 0 or high < 0,  # the interval excludes no difference
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


def ab_test(variants: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The loop against its holdout: the difference of their engagement rates, with its interval."""
    arms = {v["variant"]: (v["engaged"], v["suggestions"]) for v in variants}
    if TREATMENT not in arms or CONTROL not in arms:
        return None
    interval = difference_interval(arms[TREATMENT], arms[CONTROL])
    return {"treatment": TREATMENT, "control": CONTROL, **interval} if interval else None


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
    with db_utils.dict_cursor(conn) as cur:
        cur.execute(RATES_SQL, (since,))
        rates = cur.fetchall()
        cur.execute(EVENTS_SQL, (since,))
        events = cur.fetchall()
        cur.execute(LISTENERS_SQL, (LISTENERS,))
        listeners = cur.fetchall()
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
        raise ApiError(400, "invalid_request", f"since: at most {MAX_DAYS} days ago")
    with db_utils.connection() as conn:
        report = figures(conn, since, now.date())
        engaged = store.analytics.engaged_podcasts(conn, since)
    return {**report, "trending_topics": trending_topics(engaged)}
