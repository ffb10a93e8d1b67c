"""Reasons written ahead, measured as listeners use the service: each asks for a page, likes its
first item, and asks for the next page `THINK_SECONDS` (plus up to a second) later, against a slow
simulated LLM. Every listener is new when the phase starts, so their first page has evidence
sentences (nothing was prepared for a walk-in); the later pages are the written-ahead ones.

Figures: latency and throughput of every page after a listener's first, the share of their
items whose reason the LLM wrote, and LLM calls per served page (all pages, first ones included).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
import numpy as np

from bench.fake_ai import FakeAI, delta

THINK_SECONDS = 2.0


async def _listener(
    client: httpx.AsyncClient, user_id: str, limit: int, until: float, seen: dict[str, list]
) -> None:
    rng = random.Random(user_id)
    first = True
    while time.perf_counter() < until:
        started = time.perf_counter()
        response = await client.get("/api/recommend_podcasts", params={"user_id": user_id, "limit": limit})
        elapsed = time.perf_counter() - started
        seen["pages"].append(1)
        if response.status_code != 200:
            seen["errors"].append(response.status_code)
            return
        items = response.json()["recommendations"]
        if not first:
            seen["latencies"].append(elapsed)
            seen["items"].append(len(items))
            seen["llm_items"].append(sum(i["reason_source"] != "fallback" for i in items))
        first = False
        if items:
            item = items[0]
            body = {
                "user_id": user_id,
                "podcast_id": item["podcast_id"],
                "suggestion_id": item["suggestion_id"],
            }
            await client.post("/api/feedback", json={**body, "event": "like"})
        await asyncio.sleep(THINK_SECONDS + rng.random())


async def _run(base_url: str, users: list[str], limit: int, seconds: float) -> dict[str, list]:
    seen: dict[str, list] = {"pages": [], "latencies": [], "items": [], "llm_items": [], "errors": []}
    limits = httpx.Limits(max_connections=len(users), max_keepalive_connections=len(users))
    until = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        await asyncio.gather(*(_listener(client, u, limit, until, seen) for u in users))
    return seen


def measure(base_url: str, ai: FakeAI, users: list[str], limit: int, seconds: float) -> dict[str, Any]:
    """Run `users` as concurrent listeners for `seconds`; returns the phase's figures."""
    before = ai.counters()
    started = time.perf_counter()
    seen = asyncio.run(_run(base_url, users, limit, seconds))
    elapsed = time.perf_counter() - started
    calls = delta(before, ai.counters())["chat_requests"]
    latencies = np.array(seen["latencies"]) * 1000
    p50, p95 = np.percentile(latencies, [50, 95]) if len(latencies) else (None, None)
    return {
        "clients": len(users),
        "pages": len(seen["pages"]),
        "returning_pages": len(latencies),
        "p50_ms": None if p50 is None else round(float(p50), 1),
        "p95_ms": None if p95 is None else round(float(p95), 1),
        "rps": round(len(seen["pages"]) / elapsed, 2),
        "llm_reason_share": round(sum(seen["llm_items"]) / sum(seen["items"]), 3) if seen["items"] else None,
        "llm_calls_per_page": round(calls / len(seen["pages"]), 2) if seen["pages"] else None,
        "errors": len(seen["errors"]),
    }
