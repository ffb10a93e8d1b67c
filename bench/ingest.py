"""Ingest throughput: episodes per second through `POST /api/add_podcast`, and through the bulk
route `POST /api/add_podcasts` when the app has it, with AI requests counted by the fake server."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import httpx

from bench import load
from bench.fake_ai import FakeAI, delta

WORDS = (
    "history", "empire", "siege", "river", "trade", "science", "galaxy", "protein", "climate", "market",
    "startup", "football", "training", "recipe", "jazz", "guitar", "election", "court", "memory", "sleep",
    "ocean", "volcano", "robot", "language", "city", "museum", "forest", "music", "painting", "medicine",
    "vaccine", "planet", "engine", "bridge", "harvest", "storm", "island",
)  # fmt: skip
CATEGORIES = ("history", "science", "technology", "business", "comedy", "sports", "health", "music")
ADD_STATUSES = frozenset({200, 201, 202})
BULK_STATUSES = frozenset({200, 201, 202, 207})


def episode(tag: str, n: int) -> dict[str, Any]:
    """A small episode with varied text, so every one gets its own summary and vector."""
    rng = random.Random(f"{tag}-{n}")
    sentences = [" ".join(rng.choices(WORDS, k=12)).capitalize() + "." for _ in range(12)]
    return {
        "external_id": f"{tag}-{n}",
        "title": f"Episode {n}: {' '.join(rng.choices(WORDS, k=3))}",
        "description": sentences[0],
        "transcript": " ".join(sentences),
        "category": rng.choice(CATEGORIES),
        "language": "en",
        "duration_seconds": rng.randint(600, 5400),
    }


def _row(path: str, result: load.Result, episodes: int, counts: dict[str, int], **extra: Any) -> dict:
    return {
        "path": path,
        "episodes": episodes,
        "episodes_per_second": round(episodes / result.seconds, 1) if result.seconds else 0.0,
        "embedding_requests_per_episode": round(counts["embedding_requests"] / episodes, 3)
        if episodes
        else None,
        "embedding_inputs_per_episode": round(counts["embedding_inputs"] / episodes, 3) if episodes else None,
        "chat_requests_per_episode": round(counts["chat_requests"] / episodes, 3) if episodes else None,
        "errors": result.errors,
        **extra,
    }


def single(base_url: str, ai: FakeAI, count: int, concurrency: int, time_limit: float) -> dict:
    tag = f"single-{time.time_ns()}"
    requests = (load.Request("POST", "/api/add_podcast", episode(tag, n)) for n in range(count))
    before = ai.counters()
    result = load.run(base_url, requests, concurrency, time_limit, expect=ADD_STATUSES)
    counts = delta(before, ai.counters())
    return _row("POST /api/add_podcast", result, result.requests, counts, concurrency=concurrency)


def bulk_shape(base_url: str) -> str | None:
    """How the bulk route takes its episodes: 'object' ({"podcasts": [...]}), 'list', or None
    when the route does not exist (the runner answers 404 not_found)."""
    probe = [episode(f"probe-{time.time_ns()}", 0)]
    for shape, body in (("object", {"podcasts": probe}), ("list", probe)):
        response = httpx.post(base_url + "/api/add_podcasts", json=body, timeout=60)
        if response.status_code == 404 and "not_found" in response.text and "podcast" not in response.text:
            return None
        if response.status_code in BULK_STATUSES:
            return shape
    return None


def bulk(
    base_url: str, ai: FakeAI, count: int, batch: int, concurrency: int, time_limit: float
) -> dict[str, Any] | None:
    """Measure the bulk route, or None (with the reason logged by the caller) if it is absent."""
    shape = bulk_shape(base_url)
    if shape is None:
        return None
    tag = f"bulk-{time.time_ns()}"

    def requests() -> Iterator[load.Request]:
        for start in range(0, count, batch):
            episodes = [episode(tag, n) for n in range(start, min(count, start + batch))]
            yield load.Request(
                "POST", "/api/add_podcasts", {"podcasts": episodes} if shape == "object" else episodes
            )

    before = ai.counters()
    result = load.run(base_url, requests(), concurrency, time_limit, expect=BULK_STATUSES)
    counts = delta(before, ai.counters())
    episodes = min(count, result.completed * batch)  # every batch is full but maybe the last
    return _row(
        "POST /api/add_podcasts", result, episodes, counts, concurrency=concurrency, batch=batch, body=shape
    )
