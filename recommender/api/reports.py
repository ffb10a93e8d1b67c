"""What the operator's reports answer (`GET /api/analytics`, `/api/dashboard`, `/api/health`),
for the OpenAPI document: their top-level keys, each described, and the small parts whose shape
is settled; the larger nested series are objects, described rather than spelled out."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, RootModel

from recommender.api.responses import WHEN, Error, absent, example, example_of


class Figures(BaseModel):
    suggestions: int = Field(description="Suggestions shown")
    average_similarity: float | None = Field(description="Their average cosine similarity to the listener")
    engaged_suggestions: int = Field(description="Suggestions with a positive event attributed to them")
    engagement_rate: float = Field(description="Engaged suggestions ÷ suggestions")


class VariantFigures(Figures):
    variant: str = Field(description="The A/B variant")
    likes: int = Field(description="Like events of its listeners")
    dislikes: int = Field(description="Dislike events of its listeners")


class DayFigures(Figures):
    day: date = Field(description="The UTC day")


class RankFigures(Figures):
    rank: int = Field(description="The place on the page, from 1")


class TopicPodcast(BaseModel):
    podcast_id: int = Field(description="The episode")
    title: str = Field(description="Its title")


class TrendingTopic(BaseModel):
    label: str = Field(description="The topic, as the AI labelled it (or the group's category)")
    episodes: int = Field(description="Recently engaged episodes in the topic")
    engagement: float = Field(description="Their summed engagement")
    podcasts: list[TopicPodcast] = Field(description="Up to five of them")


TOPICS = "Recently engaged episodes clustered by their vectors, each labelled"
TOPIC = {
    "label": "Ancient empires",
    "episodes": 3,
    "engagement": 4.5,
    "podcasts": [{"podcast_id": 2, "title": "The Fall of Rome"}],
}


class Analytics(BaseModel):
    """Engagement since `since`: in all, per variant, day and rank; topics and LLM spend."""

    model_config = example(
        since="2026-11-01T00:00:00+00:00", suggestions=120, average_similarity=0.4312, engaged_suggestions=30,
        engagement_rate=0.25, likes=12, dislikes=3, events={"click": 20, "like": 12, "dislike": 3},
        by_variant=[{"variant": "loop", "suggestions": 108, "average_similarity": 0.43,
                     "engaged_suggestions": 28, "engagement_rate": 0.2593, "likes": 11, "dislikes": 3}],
        by_day=[{"day": "2026-11-02", "suggestions": 120, "average_similarity": 0.4312,
                 "engaged_suggestions": 30, "engagement_rate": 0.25}],
        by_rank=[{"rank": 1, "suggestions": 24, "average_similarity": 0.51, "engaged_suggestions": 9,
                  "engagement_rate": 0.375}],
        trending_topics=[TOPIC],
        llm_calls={"reasons": 24, "summaries": 5, "interest_profiles": 2, "topic_labels": 1,
                   "pages_served": 24, "reason_calls_per_page": 1.0,
                   "by_day": [{"day": "2026-11-02", "purpose": "reasons", "calls": 24}]},
    )  # fmt: skip

    since: datetime = Field(description=f"The start of the figures ({WHEN}); default 30 days ago")
    suggestions: int = Field(description="Suggestions shown")
    average_similarity: float | None = Field(description="Their average cosine similarity to the listener")
    engaged_suggestions: int = Field(description="Suggestions with a positive event attributed to them")
    engagement_rate: float | None = Field(description="Engaged suggestions ÷ suggestions; null with none")
    likes: int = Field(description="Like events")
    dislikes: int = Field(description="Dislike events")
    events: dict[str, int] = Field(description="Events by kind (click, listen, ...)")
    by_variant: list[VariantFigures] = Field(description="The figures per A/B variant")
    by_day: list[DayFigures] = Field(description="The figures per UTC day")
    by_rank: list[RankFigures] = Field(description="The figures per place on the page")
    trending_topics: list[TrendingTopic] = Field(description=TOPICS)
    llm_calls: dict[str, Any] = Field(
        description="LLM calls by purpose (reasons, summaries, interest_profiles, topic_labels),"
        " pages_served, reason_calls_per_page and by_day"
    )


class Totals(BaseModel):
    suggestions: int = Field(description="Suggestions shown")
    engaged: int = Field(description="Suggestions engaged with")
    events: int = Field(description="Feedback events received")


POINT = {"suggestions": 3, "engaged": 1, "engagement_rate": 0.3333}


class Dashboard(BaseModel):
    """The console's figures since `since`: the A/B read-out, engagement by rank, daily activity."""

    model_config = example(
        since="2026-11-20T00:00:00+00:00", days=["2026-11-20"],
        totals={"suggestions": 3, "engaged": 1, "events": 2},
        variants=[{"variant": "loop", "suggestions": 3, "engaged": 1, "engagement_rate": 0.3333,
                   "daily": [{"day": "2026-11-20", **POINT}]}],
        ab_test=None, ranker_test=None, ranker={"ranks": "blend", "version": None},
        by_rank=[{"rank": 1, "suggestions": 1, "engaged": 1, "engagement_rate": 1.0}],
        activity=[{"day": "2026-11-20", "suggestions": 3, "events": 2, "positive_events": 2}],
        listeners=[{"user_id": "alice", "name": "Alice"}], trending_topics=[TOPIC],
    )  # fmt: skip

    since: datetime = Field(description=f"The first day's start ({WHEN}); default 13 days before today")
    days: list[date] = Field(description="The UTC days of the daily series, `since` to today")
    totals: Totals = Field(description="Over the whole period")
    variants: list[dict[str, Any]] = Field(
        description="Per A/B variant: suggestions, engaged, engagement_rate (null: none shown) and daily"
        " (the same per day)"
    )
    ab_test: dict[str, Any] | None = Field(
        description="loop against history_only: treatment, control, difference, low and high (its 95 %"
        " interval), significant; null while an arm has shown nothing"
    )
    ranker_test: dict[str, Any] | None = Field(
        description="loop (the learned ranker, once adopted) against blend (the hand-set blend), in the"
        " shape of ab_test; null while an arm has shown nothing"
    )
    ranker: dict[str, Any] = Field(description="What ranks the loop's pages, as GET /api/health shows it")
    by_rank: list[dict[str, Any]] = Field(
        description="Per place: rank, suggestions, engaged, engagement_rate"
    )
    activity: list[dict[str, Any]] = Field(description="Per day: suggestions, events and positive_events")
    listeners: list[dict[str, Any]] = Field(description="The latest listeners: user_id and name")
    trending_topics: list[TrendingTopic] = Field(description=TOPICS)


class DatabaseState(BaseModel):
    reachable: Literal[True] = Field(description="Always true here (unreachable: 503)")
    pgvector: str = absent("The pgvector version")
    migrations: list[str] = absent("The migrations applied")
    busy: Literal[True] = absent("No pooled connection was free: the figures shown are the last read")
    figures_age_seconds: float = absent("How old those figures are")


class EpisodeCounts(BaseModel):
    ready: int = Field(description="Episodes summarized and embedded")
    pending: int = Field(description="Episodes waiting for the AI")
    failed: int = Field(description="Pending ones the worker gave up on (retried slowly)")


class Health(BaseModel):
    """The service's state; degraded is still HTTP 200 (the API answers, with fallbacks)."""

    model_config = example(
        status="ok",
        database={"reachable": True, "pgvector": "0.8.2", "migrations": ["001_initial", "010_tombstones"]},
        ai={"provider": "local", "embedding_model": "sentence-transformers/all-MiniLM-L6-v2",
            "dimensions": 384, "chat_model": "extractive", "status": "ok"},
        podcasts={"ready": 146, "pending": 0, "failed": 0},
        collaborative={"refreshed_at": "2026-12-03T00:36:52.737769+00:00", "age_seconds": 0.1,
                       "episodes_with_neighbours": 12, "refresh_seconds": 0.009, "events_since_refresh": 3,
                       "factors": {"episodes": 12, "trained_at": "2026-12-03T00:36:52.737769+00:00",
                                   "trained_by": "implicit 0.7.2 als", "train_seconds": 0.02},
                       "ease": {"regularization": 100.0, "validation_recall_at_20": 0.31},
                       "signal": {"learns_from": "consumption",
                                  "validation_recall_at_20": {"judgement": 0.27, "consumption": 0.31}}},
    )  # fmt: skip

    status: Literal["ok", "degraded"] = Field(
        description="degraded: migrations missing, every pooled connection busy or the AI failing"
    )
    database: DatabaseState = Field(description="The database")
    ai: dict[str, Any] = Field(
        description="provider, embedding_model, dimensions, chat_model and status (ok, failing, unknown);"
        " for a remote service also the state of embeddings and chat"
    )
    podcasts: EpisodeCounts | None = Field(description="Episodes by state; null when never read (busy)")
    collaborative: dict[str, Any] | None = Field(
        description="The collaborative model's freshness: refreshed_at, age_seconds,"
        " episodes_with_neighbours, refresh_seconds, events_since_refresh, and its factors (episodes,"
        " trained_at, trained_by, train_seconds) and EASE's (the regularization chosen on the held-out"
        " episodes and its validation_recall_at_20 there), and the `signal` the models learn from"
        " (learns_from: judgement, the net engagement, or consumption, any played episode counting for;"
        " chosen by the recall@20 on the held-out episodes of EASE fitted on each signal tried)"
        "; null when never read (busy)"
    )
    ranker: dict[str, Any] | None = Field(
        default=None,
        description="What ranks pages of the `loop` variant: `ranks` (learned, fitted_blend or blend) and"
        " the newest training (version, trained_at, kind, rows, pages, validation_ndcg and blend_ndcg on"
        " held-out listeners, candidates_ndcg, importances, adopted, and `blend`: the weights fitted for"
        " the deployment with their evidence: adopted, validation_ndcg (cross-validated),"
        " configured_ndcg, components_ndcg of each signal alone, pages); null when never read (busy)",
    )


class DatabaseDown(BaseModel):
    reachable: Literal[False] = Field(description="Always false here")


class HealthDown(BaseModel):
    """The database cannot be reached."""

    model_config = example(status="error", database={"reachable": False})

    status: Literal["error"] = Field(description="Always error")
    database: DatabaseDown = Field(description="The database")


class HealthFailure(RootModel[HealthDown | Error]):
    """The database cannot be reached, or another failure (an error)."""

    model_config = example(**example_of(HealthDown))
