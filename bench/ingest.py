"""Ingest throughput: episodes per second through `POST /api/add_podcast` and through the bulk
route `POST /api/add_podcasts`, with AI requests counted by the fake server."""

from __future__ import annotations

import random
import time
from typing import Any

from bench import load
from bench.catalog import CATEGORIES
from bench.fake_ai import FakeAI, delta

WORDS = (
    "history", "empire", "siege", "river", "trade", "science", "galaxy", "protein", "climate", "market",
    "startup", "football", "training", "recipe", "jazz", "guitar", "election", "court", "memory", "sleep",
    "ocean", "volcano", "robot", "language", "city", "museum", "forest", "music", "painting", "medicine",
    "vaccine", "planet", "engine", "bridge", "harvest", "storm", "island",
)  # fmt: skip
STATUSES = frozenset({200, 201, 202})


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
    def per_episode(counter: str) -> float | None:
        return round(counts[counter] / episodes, 3) if episodes else None

    return {
        "path": path,
        "episodes": episodes,
        "episodes_per_second": round(episodes / result.seconds, 1) if result.seconds else 0.0,
        "embedding_requests_per_episode": per_episode("embedding_requests"),
        "embedding_inputs_per_episode": per_episode("embedding_inputs"),
        "chat_requests_per_episode": per_episode("chat_requests"),
        "errors": result.errors,
        **extra,
    }


def single(base_url: str, ai: FakeAI, count: int, concurrency: int, time_limit: float) -> dict:
    tag = f"single-{time.time_ns()}"
    requests = (load.Request("POST", "/api/add_podcast", episode(tag, n)) for n in range(count))
    before = ai.counters()
    result = load.run(base_url, requests, concurrency, time_limit, expect=STATUSES)
    counts = delta(before, ai.counters())
    return _row("POST /api/add_podcast", result, result.requests, counts, concurrency=concurrency)


def bulk(base_url: str, ai: FakeAI, count: int, batch: int, concurrency: int, time_limit: float) -> dict:
    """`count` episodes in requests of `batch`, a list of episodes each."""
    tag = f"bulk-{time.time_ns()}"
    requests = (
        load.Request(
            "POST", "/api/add_podcasts", [episode(tag, n) for n in range(start, min(count, start + batch))]
        )
        for start in range(0, count, batch)
    )
    before = ai.counters()
    result = load.run(base_url, requests, concurrency, time_limit, expect=STATUSES)
    counts = delta(before, ai.counters())
    episodes = min(count, result.completed * batch)  # every batch is full but maybe the last
    return _row("POST /api/add_podcasts", result, episodes, counts, concurrency=concurrency, batch=batch)
