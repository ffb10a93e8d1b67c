"""What the routes answer: one pydantic model per answer shape, for the OpenAPI document
(`openapi.OPERATIONS`). The services build their answers as dicts (`store` TypedDicts such as
`PodcastRow`, `model.pages.Item.answer`); these models say, key by key, what those hold. A key
that is always there is required (its value may still be null); `absent` marks one left out.
Each model carries an example of its own (`examples`), which the document shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

Status = Literal["pending", "ready"]  # a deleted episode (a tombstone) is never answered
Variant = Literal["loop", "blend", "history_only"]  # model/variants.py
WHEN = "ISO 8601, with its UTC offset"


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def absent(description: str) -> Any:
    """A key that is left out when it does not apply (never null)."""
    return Field(None, description=description, json_schema_extra=_no_default)


def example(**values: Any) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [values]})


def example_of(model: type[BaseModel]) -> Any:
    """The example `model` carries (`example`), or None."""
    extra = model.model_config.get("json_schema_extra")
    return extra["examples"][0] if isinstance(extra, dict) and extra.get("examples") else None


EPISODE = {
    "id": 4,
    "external_id": "ep-1001",
    "title": "The Lost Library of Alexandria",
    "description": "What the ancient library held and how it was lost.",
    "summary": "Ptolemy's scholars copied every scroll that came through the harbour ...",
    "category": "history",
    "language": "en",
    "duration_seconds": 2400,
    "published_at": "2026-05-01T08:00:00+00:00",
    "status": "ready",
}
STAMPS = {"created_at": "2026-05-02T09:30:00.123456+00:00", "updated_at": "2026-05-02T09:30:01.456789+00:00"}
EVIDENCE = {"kind": "co_engagement", "podcast_id": 2, "title": "The Fall of Rome"}


class ErrorDetail(BaseModel):
    code: str = Field(
        description="For programs: invalid_request, podcast_not_found, database_unavailable, ..."
    )
    message: str = Field(description="For people: what is wrong, naming the field")


class Error(BaseModel):
    """Every error answer, and an item of an array that failed."""

    model_config = example(error={"code": "podcast_not_found", "message": "no podcast 999"})

    error: ErrorDetail = Field(description="What went wrong")


class ListedPodcast(BaseModel):
    """An episode as a listener sees it: no transcript, no enrichment error."""

    model_config = example(**EPISODE)

    id: int = Field(description="The episode's id")
    external_id: str | None = Field(description="The caller's own id of the episode")
    title: str = Field(description="Title")
    description: str | None = Field(description="Description, as given")
    summary: str | None = Field(description="A summary written by the AI; null until it is")
    category: str | None = Field(description="Category, lower case")
    language: str | None = Field(description="Language, as given (e.g. en)")
    duration_seconds: int | None = Field(description="Length in seconds")
    published_at: datetime | None = Field(description=f"When it was published ({WHEN})")
    status: Status = Field(description="pending until it is summarized and embedded, then ready")


class Podcast(ListedPodcast):
    """An episode as the operator stored it, with its enrichment state."""

    model_config = example(**EPISODE, last_error=None, **STAMPS)

    last_error: str | None = Field(description="Why the last enrichment attempt failed, while pending")
    created_at: datetime = Field(description=f"When it was added ({WHEN})")
    updated_at: datetime = Field(description=f"When it last changed ({WHEN})")


class PodcastResult(BaseModel):
    """An item of POST /api/add_podcasts that was stored."""

    model_config = example(id=50, status="ready", created=True)

    id: int = Field(description="The episode's id")
    status: Status = Field(description="ready, or pending when the AI service could not enrich it yet")
    created: bool = Field(description="Whether it is new (false: the episode with its external_id changed)")


class PodcastResults(BaseModel):
    model_config = example(
        results=[
            {"id": 50, "status": "ready", "created": True},
            {"error": {"code": "invalid_request", "message": "transcript: Field required"}},
        ]
    )

    results: list[PodcastResult | Error] = Field(description="One result per item, in order")


class Kept(BaseModel):
    feedback_events: int = Field(description="Feedback events about the episode, kept")
    suggestions: int = Field(description="Suggestions of the episode, kept")


class DeletedPodcast(BaseModel):
    """The episode is a tombstone now: its text and vector are gone, its history stays."""

    model_config = example(podcast_id=4, deleted=True, kept={"feedback_events": 12, "suggestions": 30})

    podcast_id: int = Field(description="The deleted episode")
    deleted: Literal[True] = Field(description="Always true")
    kept: Kept = Field(description="What still names the episode: its history")


class DeletedUser(BaseModel):
    """Everything about the listener is erased."""

    model_config = example(user_id="alice", deleted=True, feedback_events=12, suggestions=30)

    user_id: str = Field(description="The deleted listener")
    deleted: Literal[True] = Field(description="Always true")
    feedback_events: int = Field(description="Feedback events erased with them")
    suggestions: int = Field(description="Suggestions erased with them")


class EpisodesPage(BaseModel):
    model_config = example(podcasts=[EPISODE], next=None)

    podcasts: list[ListedPodcast] = Field(description="Ready episodes, most recently added first")
    next: int | None = Field(description="The before_id of the next page; null on the last")


Kind = Literal[
    "co_engagement", "close_to", "your_interests", "popular", "your_history", "new", "also_enjoyed",
    "same_subject",
]  # fmt: skip


class Evidence(BaseModel):
    """The true statement that ranked an episode (`model/reasons.py`); `kind` says which keys it has."""

    model_config = example(**EVIDENCE)

    kind: Kind = Field(description="What the evidence is")
    podcast_id: int = absent("co_engagement, close_to, also_enjoyed, same_subject: the episode it rests on")
    title: str = absent("The title of that episode")
    words: list[str] = absent("your_interests: words the listener's history shares with the episode")
    listeners: int = absent("popular: how many listeners enjoyed it lately")
    category: str = absent("your_history, new: the episode's category, when it has one")


class SimilarPodcast(ListedPodcast):
    model_config = example(
        **EPISODE,
        similarity=0.4341,
        score=0.717,
        evidence={"kind": "also_enjoyed", "podcast_id": 1, "title": "Paved With Stone"},
        reason="Often enjoyed by the listeners of “Paved With Stone”.",
    )

    similarity: float | None = Field(
        description="Cosine similarity to the episode; null: not a content match"
    )
    score: float = Field(description="Co-engagement and similarity blended, each scaled to 0..1")
    evidence: Evidence = Field(description="also_enjoyed or same_subject, naming the episode")
    reason: str = Field(description="The evidence as a sentence")


class SimilarPodcasts(BaseModel):
    model_config = example(podcast_id=1, similar=[example_of(SimilarPodcast)])

    podcast_id: int = Field(description="The episode they are like")
    similar: list[SimilarPodcast] = Field(description="The most similar first")


class Category(BaseModel):
    category: str = Field(description="A category")
    episodes: int = Field(description="Its ready episodes")


class Categories(BaseModel):
    model_config = example(categories=[{"category": "history", "episodes": 18}])

    categories: list[Category] = Field(description="Every category of a ready episode, the largest first")


class HistorySummary(BaseModel):
    """The listener's state after the update; never the history text itself."""

    model_config = example(
        user_id="alice", name="Alice", has_history=True, profile_status="ready", listened_count=2,
        **STAMPS, created=True,
    )  # fmt: skip

    user_id: str = Field(description="The listener")
    name: str | None = Field(description="Their name, if given")
    has_history: bool = Field(description="Whether a listening_history is stored")
    profile_status: Status = Field(description="pending while the history text is not embedded yet")
    listened_count: int = Field(description="Episodes they listened to")
    created_at: datetime = Field(description=f"When the listener was created ({WHEN})")
    updated_at: datetime = Field(description=f"When their history last changed ({WHEN})")
    created: bool = Field(description="Whether this request created the listener")


class Listener(BaseModel):
    """What a listener may read of themselves."""

    model_config = example(
        user_id="alice", name="Alice", listening_history="Ancient history, sieges and the Silk Road.",
        interest_profile=None, profile_status="ready", listened_podcast_ids=[1, 3], feedback_events=4,
        **STAMPS,
    )  # fmt: skip

    user_id: str = Field(description="The listener")
    name: str | None = Field(description="Their name, if given")
    listening_history: str | None = Field(description="The history they stated")
    interest_profile: str | None = Field(description="Written by the AI from their history and feedback")
    profile_status: Status = Field(description="pending while the history text is not embedded yet")
    listened_podcast_ids: list[int] = Field(description="The episodes they listened to, by id")
    feedback_events: int = Field(description="How many feedback events they sent")
    created_at: datetime = Field(description=f"When the listener was created ({WHEN})")
    updated_at: datetime = Field(description=f"When their history last changed ({WHEN})")


class Recommendation(BaseModel):
    """An item of a page (`model.pages.Item.answer`)."""

    model_config = example(
        podcast_id=4, title="The Lost Library of Alexandria", summary=EPISODE["summary"], category="history",
        strategy="collaborative", similarity=0.6123, score=1.0612, evidence=EVIDENCE,
        reason="Listeners who enjoyed “The Fall of Rome”, as you did, also enjoyed this.", rank=1,
        reason_source="fallback", suggestion_id=17,
    )  # fmt: skip

    podcast_id: int = Field(description="The episode")
    title: str = Field(description="Its title")
    summary: str | None = Field(description="Its summary")
    category: str | None = Field(description="Its category")
    strategy: Literal["similar", "collaborative", "explore", "popular"] = Field(
        description="What carried it: content, co-engagement, exploration, or popularity (nothing to go on)"
    )
    similarity: float | None = Field(description="Cosine similarity to the listener's profile")
    score: float | None = Field(description="The blended score; null on a popular page")
    evidence: Evidence = Field(description="Why it was ranked")
    reason: str = Field(description="The reason shown to the listener")
    rank: int = Field(description="Its place on the page, from 1")
    reason_source: Literal["cached", "generated", "fallback"] = Field(
        description="Written by the AI ahead (cached) or for this request (generated), or the evidence "
        "sentence (fallback)"
    )
    suggestion_id: int = Field(description="Send it with feedback about this item")


class RecommendationPage(BaseModel):
    model_config = example(
        user_id="alice",
        variant="loop",
        prepared=False,
        recommendations=[example_of(Recommendation)],
    )

    user_id: str = Field(description="The listener")
    variant: Variant = Field(description="The A/B variant that ranked the page")
    prepared: bool = Field(description="Whether the page was prepared ahead and served as stored")
    recommendations: list[Recommendation] = Field(description="The page, best first")


class FeedbackEvent(BaseModel):
    """A stored feedback event."""

    model_config = example(
        id=31, user_id="alice", podcast_id=4, suggestion_id=17, event="listen", value=0.8, weight=0.8,
        event_id="evt-123", occurred_at=STAMPS["created_at"], created_at=STAMPS["created_at"],
    )  # fmt: skip

    id: int = Field(description="The event's id")
    user_id: str = Field(description="The listener")
    podcast_id: int = Field(description="The episode")
    suggestion_id: int | None = Field(description="The suggestion it answers, if given")
    event: Literal["click", "listen", "complete", "skip", "like", "dislike", "rate"] = Field(
        description="What the listener did"
    )
    value: float | None = Field(description="Listen progress 0..1, or the rating 1..5")
    weight: float = Field(description="How far it moves the listener toward (+) or away from (-) the episode")
    event_id: str | None = Field(description="The caller's id of the event: stored once")
    occurred_at: datetime = Field(
        description=f"When the listener did it: as given, else when stored ({WHEN})"
    )
    created_at: datetime = Field(description=f"When it was stored ({WHEN})")


class FeedbackResult(BaseModel):
    """An item of a feedback array that was stored, or had been (same event_id)."""

    model_config = example(id=31, created=True, event_id="evt-124")

    id: int = Field(description="The event's id")
    created: bool = Field(description="false: an event with this event_id was stored before")
    event_id: str | None = Field(description="The caller's id of the event")


class FeedbackResults(BaseModel):
    model_config = example(
        results=[
            {"id": 31, "created": True, "event_id": "evt-124"},
            {"error": {"code": "user_not_found", "message": "no user 'nobody'"}},
        ]
    )

    results: list[FeedbackResult | Error] = Field(description="One result per item, in order")


class FeedbackAnswer(RootModel[FeedbackEvent | FeedbackResults]):
    """One event sent before (same event_id), or an array's results."""

    model_config = example(**example_of(FeedbackEvent))


class SearchResult(BaseModel):
    podcast_id: int = Field(description="The episode")
    title: str = Field(description="Its title")
    summary: str | None = Field(description="Its summary")
    category: str | None = Field(description="Its category")
    language: str | None = Field(description="Its language")
    duration_seconds: int | None = Field(description="Its length in seconds")
    published_at: datetime | None = Field(description=f"When it was published ({WHEN})")
    score: float = Field(description="Cosine similarity to the query (bent toward the listener's taste)")


class SearchResults(BaseModel):
    model_config = example(
        query="daily life in ancient egypt",
        min_score=0.2,
        results=[
            {
                "podcast_id": 4,
                **{k: EPISODE[k] for k in ("title", "summary", "category", "language", "duration_seconds")},
                "published_at": EPISODE["published_at"],
                "score": 0.5123,
            }
        ],
    )

    query: str = Field(description="The query, trimmed")
    min_score: float = Field(description="The least score shown: the request's, or SEARCH_MIN_SCORE")
    results: list[SearchResult] = Field(description="The matches, best first")
