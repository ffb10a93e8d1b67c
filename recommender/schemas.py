"""Request shapes, validated by pydantic. Wrong types are rejected, not coerced."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    ValidationError,
    model_validator,
)

# What Postgres can store is checked here, so bad input is a 400 and never a database error.
MAX_BIGINT = 2**63 - 1
MAX_INTEGER = 2**31 - 1
DEFAULT_PAGE_SIZE = 5  # recommendations per page when the caller does not say
MAX_OFFSET = timedelta(hours=16)  # Postgres rejects time-zone offsets of 16 hours and more
CLOCK_SKEW = timedelta(minutes=5)  # how far a caller's clock may be off the service's, either way
NO_NUL = r"^[^\x00]*$"  # a pattern, so it is part of the OpenAPI document too
NO_CONTROL = r"^[^\x00-\x1f]+$"
PATTERNS = {
    NO_NUL: "must not contain NUL characters (\\u0000)",
    NO_CONTROL: "must not contain control characters",
}


def _date_and_time(value: object) -> object:
    """Times are ISO 8601 text: a date and time (`2026-05-01T08:00:00Z`), or a plain date
    (`2026-05-01`: its start, in UTC). pydantic alone would also take "0" as 1970."""
    if not isinstance(value, str):
        return value
    if re.fullmatch(r"\d{4}-\d\d-\d\d", value):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)  # its ValueError says what is wrong
    if not re.match(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d", value):
        raise ValueError("must be an ISO 8601 date (2026-05-01) or date and time (2026-05-01T08:00:00Z)")
    return datetime.fromisoformat(value)


def _storable_time(moment: datetime) -> datetime:
    offset = moment.utcoffset()
    if offset is not None and abs(offset) >= MAX_OFFSET:
        raise ValueError("the time-zone offset must be within ±15:59")
    try:
        year = (moment.astimezone(UTC) if offset is not None else moment).year
    except OverflowError:
        year = 0
    if not 1900 <= year <= 9999:
        raise ValueError("must be between the years 1900 and 9999")
    return moment


# Strings are trimmed, then checked; constraints added by `Annotated[Text, ...]` merge into these.
Plain = Annotated[str, StringConstraints(strip_whitespace=True, pattern=NO_NUL)]  # even empty
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, pattern=NO_NUL)]
Category = Annotated[Text, StringConstraints(to_lower=True, max_length=100)]
UserId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_CONTROL)
]


def _whole(value: object) -> object:
    """JSON has one kind of number: 2.0 is the integer 2 (as JSON Schema says), 2.5 is not one."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Integer = Annotated[int, BeforeValidator(_whole)]
Id = Annotated[Integer, Field(ge=1, le=MAX_BIGINT)]  # a bigint row id
Moment = Annotated[
    datetime,
    BeforeValidator(_date_and_time),
    AfterValidator(_storable_time),
    Field(
        description="ISO 8601, e.g. 2026-05-01T08:00:00Z, or a date (2026-05-01: its start, UTC); "
        "years 1900-9999, an offset within ±15:59"
    ),
]


def _past(moment: datetime) -> datetime:
    """An event's time, in UTC when it has no offset; the future (beyond `CLOCK_SKEW`) is refused."""
    moment = moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)
    if moment > datetime.now(UTC) + CLOCK_SKEW:
        raise ValueError(f"must not be in the future (more than {CLOCK_SKEW.seconds // 60} minutes ahead)")
    return moment


EventTime = Annotated[Moment, AfterValidator(_past)]
OCCURRED = (
    "(an imported history keeps its times; absent: now). No more than"
    f" {CLOCK_SKEW.seconds // 60} minutes ahead of the service's clock; without an offset, UTC"
)


def describe(exc: ValidationError, whole: str = "body") -> str:
    """A validation error on one line: `field: what is wrong; ...` (`whole` for the value itself)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or whole}: {_message(e)}" for e in exc.errors())


def _message(error: Any) -> str:
    pattern = error.get("ctx", {}).get("pattern") if error["type"] == "string_pattern_mismatch" else None
    return PATTERNS.get(pattern, error["msg"])


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


Title = Annotated[Text, StringConstraints(max_length=500)]
Transcript = Annotated[Text, StringConstraints(max_length=200_000)]


class PodcastFields(Body):
    """The optional fields of an episode, shared by adding and updating one."""

    description: Annotated[Plain, StringConstraints(max_length=5_000)] | None = Field(
        None, description="What the episode is about, shown to listeners"
    )
    external_id: Annotated[Text, StringConstraints(max_length=200)] | None = Field(
        None, description="Your own id of the episode: adding it again updates that episode"
    )
    category: Category | None = Field(None, description="A category, e.g. history (stored in lower case)")
    language: Annotated[Text, StringConstraints(max_length=35)] | None = Field(
        None, description="Its language, e.g. en"
    )
    duration_seconds: Annotated[Integer, Field(ge=0, le=7 * 24 * 3600)] | None = Field(
        None, description="Its length in seconds"
    )
    published_at: Moment | None = Field(None, description="When it was published")


EPISODE_EXAMPLE = {
    "external_id": "ep-1001",
    "title": "The Lost Library of Alexandria",
    "transcript": "Today we follow the scrolls of the great library ...",
    "description": "What the ancient library held and how it was lost.",
    "category": "history",
    "language": "en",
    "duration_seconds": 2400,
    "published_at": "2026-05-01T08:00:00Z",
}


class AddPodcastRequest(PodcastFields):
    model_config = ConfigDict(json_schema_extra={"examples": [EPISODE_EXAMPLE]})

    title: Title = Field(description="Its title")
    transcript: Transcript = Field(description="Its full text: the summary and the vector are made from it")


class BulkItems(RootModel[list[Any]]):
    """A JSON array of request bodies (`add_podcast`, `feedback`); each item is validated on its own."""


class UpdatePodcastRequest(PodcastFields):
    """Any subset of the fields of `AddPodcastRequest`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"category": "science"}]})

    title: Title | None = Field(None, description="A new title (it cannot be removed)")
    transcript: Transcript | None = Field(None, description="A new text, summarized and embedded again")

    @model_validator(mode="after")
    def _not_empty(self) -> UpdatePodcastRequest:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        for required in ("title", "transcript"):
            if required in self.model_fields_set and getattr(self, required) is None:
                raise ValueError(f"{required} cannot be removed")
        return self


class UpdateUserHistoryRequest(Body):
    # What `_has_history` checks, for the OpenAPI document: no history text, then listens. An if/then,
    # not an anyOf of the two, which a generated client takes for two other shapes of the body.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {
                "not": {
                    "required": ["listening_history"],
                    "properties": {"listening_history": {"type": "string"}},
                }
            },
            "then": {
                "required": ["listened_podcast_ids"],
                "properties": {"listened_podcast_ids": {"minItems": 1}},
            },
            "examples": [
                {
                    "user_id": "alice",
                    "name": "Alice",
                    "listening_history": "Ancient history, sieges and the Silk Road.",
                    "listened_podcast_ids": [1, 3],
                }
            ],
        }
    )

    user_id: UserId = Field(description="The listener's id; created if new")
    name: Annotated[Text, StringConstraints(max_length=200)] | None = Field(None, description="Their name")
    listening_history: Annotated[Text, StringConstraints(max_length=20_000)] | None = Field(
        None, description="What they listen to, in their words; replaces the text stored before"
    )
    listened_podcast_ids: Annotated[list[Id], Field(max_length=1_000)] = Field(
        [], description="Episodes they listened to; added to those stored before"
    )
    occurred_at: EventTime | None = Field(
        None, description=f"When they listened to `listened_podcast_ids` {OCCURRED}"
    )

    @model_validator(mode="after")
    def _has_history(self) -> UpdateUserHistoryRequest:
        if self.listening_history is None and not self.listened_podcast_ids:
            raise ValueError("give listening_history, listened_podcast_ids or both")
        return self


Language = Annotated[Text, StringConstraints(max_length=35)]
MaxDuration = Annotated[int, Field(ge=0, le=MAX_INTEGER)]


class CatalogueFilters(BaseModel):
    """The filters of what a listener is shown: pages, search and the episode list."""

    model_config = ConfigDict(extra="ignore")

    category: Category | None = Field(
        None,
        description="Only episodes of this category (GET /api/categories lists them)",
        examples=["history"],
    )
    language: Language | None = Field(None, description="Only episodes in this language", examples=["en"])
    max_duration_seconds: MaxDuration | None = Field(
        None, description="Only episodes at most this long, in seconds", examples=[3600]
    )
    published_after: Moment | None = Field(
        None, description="Only episodes published after this time", examples=["2025-01-01T00:00:00Z"]
    )

    def only_by_category(self) -> bool:
        return self.language is None and self.max_duration_seconds is None and self.published_after is None


class RecommendQuery(CatalogueFilters):
    """Query-string parameters arrive as text, so numbers are parsed here (lax mode)."""

    user_id: UserId = Field(description="The listener", examples=["alice"])
    limit: Annotated[int, Field(ge=1, le=50)] = Field(
        DEFAULT_PAGE_SIZE, description="Episodes on the page", examples=[5]
    )
    # Up to this long for the LLM to write reasons the page has none for yet (written ahead,
    # most pages have them all); 0 serves at once with evidence sentences for the rest.
    wait_seconds: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)] = Field(
        0,
        description="Seconds to wait for the AI to write reasons the page has none for yet; 0 answers at "
        "once, with evidence sentences",
        examples=[0],
    )


FeedbackEvent = Literal["click", "listen", "complete", "skip", "like", "dislike", "rate"]


class FeedbackRequest(Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"user_id": "alice", "podcast_id": 4, "event": "listen", "value": 0.8, "event_id": "evt-123"}
            ]
        }
    )

    user_id: UserId = Field(description="The listener")
    podcast_id: Id = Field(description="The episode")
    event: FeedbackEvent = Field(description="What the listener did")
    suggestion_id: Id | None = Field(
        None, description="The suggestion_id of the page item it is about (from recommend_podcasts)"
    )
    # listen progress 0..1, or a rating 1..5 with "rate"; stored as `real`, to 6 decimal places
    value: Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)] | None = Field(
        None, description="listen: the progress, 0 to 1; rate: the rating, 1 to 5 (needed)"
    )
    event_id: Annotated[Text, StringConstraints(max_length=200)] | None = Field(
        None, description="Your id of the event: sent again, it is not stored again"
    )
    occurred_at: EventTime | None = Field(
        None,
        description=f"When the listener did it {OCCURRED}; not before the suggestion it names was served",
    )

    @model_validator(mode="after")
    def _value_fits_event(self) -> FeedbackRequest:
        if self.value is not None:
            self.value = round(self.value, 6)  # 1e-50 would underflow a `real`
        if self.event == "listen" and self.value is not None and not 0 <= self.value <= 1:
            raise ValueError("value of a listen is the progress, from 0 to 1")
        if self.event == "rate" and (self.value is None or not 1 <= self.value <= 5):
            raise ValueError("a rate event needs a value from 1 to 5")
        return self


UiFile = Literal["app.js", "charts.js", "style.css"]  # what GET /api/ui/{file} serves from ui/


class AnalyticsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    since: Moment | None = Field(
        None,
        description="The start of the figures (default: 30 days ago; the dashboard: 13 days before today)",
        examples=["2026-11-01T00:00:00Z"],
    )


class SearchQuery(CatalogueFilters):
    q: Annotated[Text, StringConstraints(max_length=1_000)] = Field(
        description="What to look for, in plain words", examples=["daily life in ancient egypt"]
    )
    limit: Annotated[int, Field(ge=1, le=50)] = Field(10, description="The most results", examples=[5])
    # Below this cosine similarity a match is not shown (0 shows every match up to `limit`).
    min_score: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = Field(
        None,
        description="The least score (cosine similarity) shown; default SEARCH_MIN_SCORE (0.2), 0 shows all",
        examples=[0.2],
    )
    user_id: UserId | None = Field(
        None, description="Bend the results toward this listener's taste", examples=["alice"]
    )


class EpisodesQuery(CatalogueFilters):
    """A page of the catalogue, most recently added first; `before_id` is the last page's `next`."""

    limit: Annotated[int, Field(ge=1, le=100)] = Field(20, description="Episodes on the page", examples=[20])
    before_id: Id | None = Field(
        None, description="Episodes below this id: the `next` of the page before", examples=[120]
    )


class NoQuery(BaseModel):
    """A route that takes no query parameters (any is refused as unknown)."""


class SimilarQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: Annotated[int, Field(ge=1, le=50)] = Field(
        DEFAULT_PAGE_SIZE, description="The most episodes", examples=[3]
    )
