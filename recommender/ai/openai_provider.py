"""OpenAI, Azure OpenAI or any OpenAI-compatible server: the prompts of `prompts.py` sent through
the thin client of `openai_client.py`, and every answer checked before it is used."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import openai

import openai_client
from recommender.ai import status
from recommender.ai.interface import KNOWN_DIMENSIONS, AIProviderError, Episode, ReasonItem
from recommender.ai.prompts import (
    LABEL_MAX_CHARS,
    LABEL_MIN_CHARS,
    LABELS_PROMPT,
    PROBE_PROMPT,
    PROFILE_MAX_CHARS,
    PROFILE_PROMPT,
    REASON_MAX_CHARS,
    REASONS_PROMPT,
    SUMMARY_MAX_CHARS,
    SUMMARY_PROMPT,
    TRANSCRIPT_PROMPT_CHARS,
    data,
)
from recommender.ai.text import clip, extractive_summary, keyword_profile, presentable, refused, topic_label

log = logging.getLogger(__name__)
R = TypeVar("R")


def _normalize(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1, norms)).astype(np.float32)


def _fallback(kind: str, generated: str, text: str) -> str:
    """`text`, the offline one, in place of `generated`; the log names why (never the text)."""
    log.warning("generated %s failed the content check (%s); the offline text is used", kind, _why(generated))
    return text


def _why(generated: str) -> str:
    return refused(generated) or "length"


class OpenAIProvider:
    """OpenAI, Azure OpenAI or any OpenAI-compatible server, through the `openai` SDK."""

    def __init__(
        self,
        client: openai.OpenAI,
        *,
        name: str,
        embedding_model: str,
        chat_model: str,
        dimensions: int = 0,
        batch_size: int = 128,
    ) -> None:
        self.client = client
        self.name = name
        self.embedding_model = embedding_model
        self.chat_model = chat_model
        self._requested_dimensions = dimensions
        self._dimensions = dimensions or KNOWN_DIMENSIONS.get(embedding_model, 0)
        self.batch_size = batch_size

    @property
    def dimensions(self) -> int:
        if not self._dimensions:  # an unknown model: ask it once
            self._dimensions = int(self.embed(["dimension probe"]).shape[1])
        return self._dimensions

    def _call(self, request: Callable[[openai.OpenAI], R]) -> R:
        """`request` on the client within the current request's AI budget (`openai_client.call`)."""
        try:
            return openai_client.call(self.client, request)
        except openai_client.BudgetSpentError as exc:
            raise AIProviderError(str(exc)) from exc

    def embed(self, texts: list[str]) -> np.ndarray:
        extra = {"dimensions": self._requested_dimensions} if self._requested_dimensions else {}
        rows: list[list[float]] = []
        try:
            for start in range(0, len(texts), self.batch_size):
                batch = [t.strip() or "(empty)" for t in texts[start : start + self.batch_size]]
                response = self._call(
                    lambda client, batch=batch: client.embeddings.create(
                        model=self.embedding_model, input=batch, **extra
                    )
                )
                rows.extend(item.embedding for item in sorted(response.data, key=lambda d: d.index))
        except openai.OpenAIError as exc:
            status.failed("embeddings", f"embedding request failed: {type(exc).__name__}")
            raise AIProviderError(f"embedding request failed: {type(exc).__name__}") from exc
        status.succeeded("embeddings")
        return _normalize(np.asarray(rows, dtype=np.float32))

    def _chat(self, system: str, user: str, *, json_mode: bool = False) -> str:
        extra = {"response_format": {"type": "json_object"}} if json_mode else {}
        try:
            response = self._call(
                lambda client: client.chat.completions.create(
                    model=self.chat_model,
                    messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                    temperature=0.3,
                    **extra,
                )
            )
        except openai.OpenAIError as exc:
            status.failed("chat", f"chat request failed: {type(exc).__name__}")
            raise AIProviderError(f"chat request failed: {type(exc).__name__}") from exc
        status.succeeded("chat")
        content = response.choices[0].message.content if response.choices else None
        if not content or not content.strip():
            raise AIProviderError("chat request returned no content")
        return content.strip()

    def summarize(self, episodes: list[Episode]) -> list[str | None]:
        payload = {
            "episodes": [
                {"id": n, "title": e.title, "description": e.description,
                 "transcript": e.transcript[:TRANSCRIPT_PROMPT_CHARS]}
                for n, e in enumerate(episodes)
            ]
        }  # fmt: skip
        answer = self._chat(SUMMARY_PROMPT, data(payload), json_mode=True)
        try:
            written = {int(s["id"]): str(s["summary"]) for s in json.loads(answer)["summaries"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise AIProviderError("summaries answer was not the JSON asked for") from exc
        summaries: list[str | None] = []
        for n, episode in enumerate(episodes):
            summary = clip(written[n], SUMMARY_MAX_CHARS) if n in written else None
            if summary is not None and not presentable(summary, SUMMARY_MAX_CHARS):
                text = episode.transcript or episode.description or episode.title
                summary = _fallback("summary", summary, extractive_summary(text))
            summaries.append(summary)
        return summaries

    def write_reasons(self, profile: str, items: list[ReasonItem]) -> dict[int, str]:
        payload = {
            "listener_profile": profile,
            "items": [
                {"podcast_id": i.podcast_id, "title": i.title, "summary": i.summary, "evidence": i.evidence}
                for i in items
            ],
        }
        answer = self._chat(REASONS_PROMPT, data(payload), json_mode=True)
        try:
            entries = json.loads(answer)["reasons"]
            reasons = {int(e["podcast_id"]): str(e["reason"]) for e in entries}
        except (ValueError, KeyError, TypeError) as exc:
            raise AIProviderError("reasons answer was not the JSON asked for") from exc
        wanted = {i.podcast_id for i in items}
        clipped = {pid: clip(r, REASON_MAX_CHARS) for pid, r in reasons.items() if pid in wanted}
        fit = {pid: r for pid, r in clipped.items() if presentable(r, REASON_MAX_CHARS)}
        if len(fit) < len(clipped):  # the caller falls back to the evidence sentence
            unfit = sorted({_why(r) for pid, r in clipped.items() if pid not in fit})
            log.warning(
                "%d generated reason(s) failed the content check (%s)",
                len(clipped) - len(fit),
                ", ".join(unfit),
            )
        return fit

    def write_interest_profile(self, history: str, liked: list[str], disliked: list[str]) -> str:
        payload = {"stated_history": history, "engaged_with": liked, "did_not_enjoy": disliked}
        profile = clip(self._chat(PROFILE_PROMPT, data(payload)), PROFILE_MAX_CHARS)
        if presentable(profile, PROFILE_MAX_CHARS):
            return profile
        return _fallback("interest profile", profile, keyword_profile(history, liked))

    def label_topics(self, groups: list[list[str]]) -> list[str]:
        answer = self._chat(LABELS_PROMPT, data({"groups": groups}), json_mode=True)
        try:
            labels = [clip(str(label), LABEL_MAX_CHARS) for label in json.loads(answer)["labels"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise AIProviderError("labels answer was not the JSON asked for") from exc
        if len(labels) != len(groups):
            raise AIProviderError("labels answer has the wrong number of labels")
        return [
            label
            if presentable(label, LABEL_MAX_CHARS, LABEL_MIN_CHARS)
            else _fallback("topic label", label, topic_label(group))
            for label, group in zip(labels, groups, strict=True)
        ]

    def probe(self, capability: str) -> None:
        """One tiny call of `capability` (`embeddings` or `chat`), for health: its outcome is
        recorded like any call's."""
        if capability == "chat":
            self._chat(PROBE_PROMPT, data({"probe": "health"}))
        else:
            self.embed(["health probe"])
