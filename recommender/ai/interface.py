"""The one small interface every AI provider implements, and the data it takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "all-MiniLM-L6-v2": 384,
}


class AIProviderError(Exception):
    """The AI service failed (timeout, rate limit, outage, unusable answer)."""


@dataclass(frozen=True)
class Episode:
    title: str
    description: str
    transcript: str


@dataclass(frozen=True)
class ReasonItem:
    podcast_id: int
    title: str
    summary: str
    evidence: str  # a true sentence about why it was ranked: the offline reason, the LLM's ground


class AIProvider(Protocol):
    name: str
    embedding_model: str
    chat_model: str

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """One unit-length float32 row per text."""

    def summarize(self, episodes: list[Episode]) -> list[str | None]:
        """One summary per episode, in one call; None where the answer has none for it."""
        ...

    def write_reasons(self, profile: str, items: list[ReasonItem]) -> dict[int, str]:
        """Reasons by podcast id, all written in a single call."""

    def write_interest_profile(self, history: str, liked: list[str], disliked: list[str]) -> str:
        """A short text of what the listener enjoys (positive only: it is embedded)."""

    def label_topics(self, groups: list[list[str]]) -> list[str]:
        """A short label per group of episode titles, all in a single call."""

    def probe(self, capability: str) -> None:
        """One tiny call of `capability` (`embeddings` or `chat`) for health; raises AIProviderError."""
