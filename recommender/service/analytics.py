"""The figures the loop is judged by: engagement per variant, day and rank, trending topics, LLM spend."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

import db_utils
from recommender import store
from recommender.ai import get_provider
from recommender.ai.interface import AIProviderError
from recommender.ai.prompts import LABEL_MAX_CHARS
from recommender.ai.text import presentable
from recommender.model import topics
from recommender.schemas import AnalyticsQuery
from recommender.service.database import require_database

log = logging.getLogger(__name__)


def analytics(query: AnalyticsQuery) -> dict[str, Any]:
    """The figures the loop is judged by, since `since` (default: the last 30 days)."""
    require_database()
    since = query.since or datetime.now(UTC) - timedelta(days=30)
    since = since if since.tzinfo else since.replace(tzinfo=UTC)  # as the dashboard reads it
    with db_utils.connection() as conn:
        suggestion_rows = store.analytics.suggestion_figures(conn, since)
        event_rows = store.analytics.event_figures(conn, since)
        engaged = store.analytics.engaged_podcasts(conn, since)
        ai_calls = store.analytics.ai_call_figures(conn, since)
    events = Counter({r["event"]: r["events"] for r in event_rows if r["variant"] is None})
    events_by_variant: dict[str, Counter] = {}
    for row in event_rows:
        if row["variant"] is not None:
            events_by_variant.setdefault(row["variant"], Counter())[row["event"]] = row["events"]

    def figures(row: dict[str, Any], counts: Counter | None = None) -> dict[str, Any]:
        figure = {
            "suggestions": row["suggestions"],
            "average_similarity": None
            if row["average_similarity"] is None
            else round(row["average_similarity"], 4),
            "engaged_suggestions": row["engaged"],
            "engagement_rate": round(row["engaged"] / row["suggestions"], 4),
        }
        if counts is not None:
            figure |= {"likes": counts["like"], "dislikes": counts["dislike"]}
        return figure

    groups: dict[str, list[dict[str, Any]]] = {"all": [], "variant": [], "day": [], "rank": []}
    for row in suggestion_rows:
        groups[row["grouped_by"]].append(row)
    first_ranks = next((r["suggestions"] for r in groups["rank"] if r["rank"] == 1), 0)  # pages served
    total = (
        groups["all"][0] if groups["all"] else {"suggestions": 0, "average_similarity": None, "engaged": 0}
    )
    return {
        "since": since.isoformat(),
        **(
            figures(total)
            if total["suggestions"]
            else {
                "suggestions": 0,
                "average_similarity": None,
                "engaged_suggestions": 0,
                "engagement_rate": None,
            }
        ),
        "likes": events["like"],
        "dislikes": events["dislike"],
        "events": dict(events),
        "by_variant": [
            {"variant": r["variant"], **figures(r, events_by_variant.get(r["variant"], Counter()))}
            for r in groups["variant"]
        ],
        "by_day": [{"day": r["day"].isoformat(), **figures(r)} for r in groups["day"]],
        "by_rank": [{"rank": r["rank"], **figures(r)} for r in groups["rank"]],
        "trending_topics": trending_topics(engaged),
        "llm_calls": llm_spend(ai_calls, pages=first_ranks),
    }


def llm_spend(rows: list[dict[str, Any]], pages: int) -> dict[str, Any]:
    """LLM calls by purpose and day (the `openai`/`azure` providers), and reason calls per page
    served: what the loop spends against what it serves."""
    by_purpose = Counter()
    for row in rows:
        by_purpose[row["purpose"]] += row["calls"]
    return {
        **{
            purpose: by_purpose[purpose]
            for purpose in ("reasons", "summaries", "interest_profiles", "topic_labels")
        },
        "pages_served": pages,
        "reason_calls_per_page": round(by_purpose["reasons"] / pages, 3) if pages else None,
        "by_day": [{"day": r["day"].isoformat(), "purpose": r["purpose"], "calls": r["calls"]} for r in rows],
    }


def trending_topics(engaged: list[dict[str, Any]], max_topics: int = 5) -> list[dict[str, Any]]:
    """The topics of the recently engaged episodes (`model.topics.trending`), each labelled."""
    groups = topics.trending(
        np.array([e["embedding"] for e in engaged]), np.array([e["engagement"] for e in engaged]), max_topics
    )

    def described(episode: dict[str, Any]) -> str:  # the category names the topic when titles share no word
        return f"{episode['title']} ({episode['category']})" if episode["category"] else episode["title"]

    texts = [[described(engaged[i]) for i in group[:8]] for group in groups]
    categories = [Counter(engaged[i]["category"] or "other" for i in g).most_common(1)[0][0] for g in groups]
    categories = [c if presentable(c, LABEL_MAX_CHARS, min_chars=1) else "other" for c in categories]
    labels = label_topics(texts, categories) if groups else []
    return [
        {
            "label": label,
            "episodes": len(group),
            "engagement": round(sum(engaged[i]["engagement"] for i in group), 3),
            "podcasts": [
                {"podcast_id": engaged[i]["podcast_id"], "title": engaged[i]["title"]} for i in group[:5]
            ],
        }
        for label, group in zip(labels, groups, strict=True)
    ]


LABELS_KEPT_DAYS = 30


def label_topics(texts: list[list[str]], fallbacks: list[str]) -> list[str]:
    """A label per group of episode texts: the one written before for the same episodes (and the
    same chat model), or one AI call for all the new groups, kept and counted (`topic_labels`).
    When the AI service fails, a new group is labelled by its most common category."""
    provider = get_provider()
    keys = [_digest([provider.chat_model, sorted(group)]) for group in texts]
    with db_utils.connection() as conn:
        known = store.analytics.topic_labels(conn, keys)
    new = [n for n, key in enumerate(keys) if key not in known]
    if new:
        try:
            written = provider.label_topics([texts[n] for n in new])
        except AIProviderError as exc:
            log.warning("topic labels fell back to categories: %s", exc)
            return [known.get(key, fallback) for key, fallback in zip(keys, fallbacks, strict=True)]
        fresh = {keys[n]: label for n, label in zip(new, written, strict=True)}
        with db_utils.connection() as conn:
            store.analytics.save_topic_labels(conn, fresh)
            if provider.name != "local":
                store.analytics.count_ai_calls(conn, "topic_labels")
        known |= fresh
    return [known[key] for key in keys]


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False).encode()).hexdigest()
