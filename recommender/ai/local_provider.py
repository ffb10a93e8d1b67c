"""The offline provider: all-MiniLM-L6-v2 embeddings on the CPU, extractive summaries, the
evidence sentence as the reason. Nothing is downloaded and nothing can fail."""

from __future__ import annotations

import threading

import numpy as np

from recommender.ai.interface import KNOWN_DIMENSIONS, Episode, ReasonItem
from recommender.ai.text import extractive_summary, keyword_profile, topic_label


class LocalProvider:
    """Offline: all-MiniLM-L6-v2 embeddings on the CPU, extractive summaries, evidence as reasons."""

    name = "local"
    chat_model = "extractive"

    def __init__(self, embedding_model: str, batch_size: int = 128) -> None:
        if not embedding_model.endswith("all-MiniLM-L6-v2"):
            raise ValueError(f"LOCAL_EMBEDDING_MODEL must name all-MiniLM-L6-v2, not {embedding_model!r}")
        self.embedding_model = embedding_model
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    @property
    def dimensions(self) -> int:
        return KNOWN_DIMENSIONS["all-MiniLM-L6-v2"]

    def _load(self):
        with self._lock:
            if self._model is None:
                from recommender.ai import (
                    minilm,  # onnxruntime: for local running only (requirements-dev.txt)
                )

                self._model = minilm.MiniLM()
            return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._load().embed(texts, self.batch_size)

    def summarize(self, episodes: list[Episode]) -> list[str | None]:
        return [extractive_summary(e.transcript or e.description or e.title) for e in episodes]

    def write_reasons(self, profile: str, items: list[ReasonItem]) -> dict[int, str]:
        """None written: offline, the evidence sentence is served as the reason, and says so."""
        return {}

    def write_interest_profile(self, history: str, liked: list[str], disliked: list[str]) -> str:
        return keyword_profile(history, liked)

    def label_topics(self, groups: list[list[str]]) -> list[str]:
        """The words most of a group's texts share (`text.topic_label`): what the episodes have in
        common, not one title's words."""
        return [topic_label(texts) for texts in groups]

    def probe(self, capability: str) -> None:
        """Nothing to probe: offline, nothing can fail."""
