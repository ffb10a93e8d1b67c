"""The soak's traffic (bench/soak.py, tests/test_soak.py): listeners doing what a frontend does.

Each listener sets up a history, then loops until the deadline: a page, an event on some of its
items with their `suggestion_id` (one request each, or one bulk array), now and then a search or a
history update, rarely a new episode or a health check. `Stats` keeps every answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from bench.db import connect

ERRORS_KEPT = 50  # 5xx answers kept with their body (all are counted)
SEARCHES = [
    "ancient empires and sieges",
    "how the brain sleeps",
    "startup funding stories",
    "quick weeknight dinners",
    "unsolved mysteries",
    "stand-up comedy",
    "artificial intelligence",
    "running and fitness",
]


@dataclass(frozen=True)
class Mix:
    """What a listener does after each page (shares are chances per page)."""

    page_size: int = 5
    feedback_per_page: int = 2  # items of the page a like/skip/listen/complete is sent on
    bulk_share: float = 0.3  # those events as one array rather than one request each
    category_share: float = 0.1  # pages asked for one category
    search_share: float = 0.2
    history_share: float = 0.1  # a history update: a page item listened, sometimes new text
    add_share: float = 0.01  # a new episode (admin route)
    health_share: float = 0.03
    background_feedback: bool = True  # events posted without waiting, as a frontend's taps are


@dataclass
class Stats:
    """Every answer: route, status, latency, when it finished; 5xx with their error code and body."""

    started: float = field(default_factory=time.perf_counter)
    answers: list[tuple[str, str, float, float]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_codes: Counter[str] = field(default_factory=Counter)

    def add(self, route: str, status: str, seconds: float, response: httpx.Response | None) -> None:
        at = time.perf_counter() - self.started
        self.answers.append((route, status, seconds, at))
        if response is not None and response.status_code < 500:
            return
        code = status
        if response is not None:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                code = f"{status} {response.json()['error']['code']}"
        self.error_codes[code] += 1
        if len(self.errors) < ERRORS_KEPT:
            body = response.text[:500] if response is not None else ""
            self.errors.append(
                {"route": route, "status": status, "code": code, "at_s": round(at, 1), "body": body}
            )

    def routes(self) -> dict[str, dict[str, Any]]:
        by_route: dict[str, list[tuple[str, float]]] = {}
        for route, status, seconds, _ in self.answers:
            by_route.setdefault(route, []).append((status, seconds))
        figures = {}
        for route, rows in sorted(by_route.items()):
            p50, p99 = np.percentile([s for _, s in rows], [50, 99]) * 1000
            statuses = dict(sorted(Counter(status for status, _ in rows).items()))
            figures[route] = {
                "count": len(rows),
                "statuses": statuses,
                "p50_ms": round(p50, 1),
                "p99_ms": round(p99, 1),
            }
        return figures

    def throughput(self, window: float, seconds: float) -> list[dict[str, float]]:
        """Answers per `window` seconds over the run's `seconds` (those answered after its end, the
        requests then in flight, count in the last window; a last partial window is its length)."""
        last = max(math.ceil(seconds / window) - 1, 0)
        counts = Counter(min(int(at // window), last) for *_, at in self.answers)
        spans = [min(window, seconds - n * window) for n in range(last + 1)]
        return [
            {"from_s": n * window, "requests": counts[n], "rps": round(counts[n] / span, 1)}
            for n, span in enumerate(spans)
        ]

    def five_xx(self) -> int:
        return sum(1 for _, status, *_ in self.answers if status.isdigit() and int(status) >= 500)

    def transport_errors(self) -> int:
        return sum(1 for _, status, *_ in self.answers if not status.isdigit())


class Catalogue:
    """The episodes the listeners know of: ids by category, and a few to copy new episodes from."""

    def __init__(self, dsn: str) -> None:
        with connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT id, category, title, transcript FROM podcasts ORDER BY id")
            rows = cur.fetchall()
        self.by_category: dict[str, list[int]] = {}
        for podcast_id, category, *_ in rows:
            self.by_category.setdefault(category or "other", []).append(podcast_id)
        self.categories = sorted(self.by_category)
        self.texts = [(title, transcript) for _, _, title, transcript in rows]


async def send(
    client: httpx.AsyncClient, stats: Stats, route: str, method: str, path: str, body: Any = None
) -> Any:
    """One request, recorded; the JSON answer of a 2xx, else None."""
    started = time.perf_counter()
    try:
        response = await client.request(method, path, json=body)
    except httpx.HTTPError as exc:
        stats.add(route, type(exc).__name__, time.perf_counter() - started, None)
        return None
    stats.add(route, str(response.status_code), time.perf_counter() - started, response)
    return response.json() if response.is_success else None


def event_of(rng: random.Random) -> dict[str, Any]:
    kind = rng.choices(["like", "skip", "listen", "complete"], weights=[35, 30, 20, 15])[0]
    return {"event": kind, "value": round(rng.random(), 3)} if kind == "listen" else {"event": kind}


def page_events(user: str, items: list[dict], count: int, rng: random.Random, seq: int) -> list[dict]:
    """What the listener did with `count` items of the page, each with its `suggestion_id`."""
    return [
        {
            "user_id": user,
            "podcast_id": item["podcast_id"],
            "suggestion_id": item["suggestion_id"],
            **event_of(rng),
            "event_id": f"{user}-{seq}-{n}",
        }
        for n, item in enumerate(rng.sample(items, min(count, len(items))))
    ]


async def listener(
    instances: list[httpx.AsyncClient], stats: Stats, n: int, deadline: float, mix: Mix, catalogue: Catalogue
) -> None:
    """One listener: a history, then pages and what they do with them until `deadline`. As a
    frontend posts a tap without waiting for its answer, a page's events are sent in the
    background (with `mix.background_feedback`): they meet the listener's next requests. Each
    request goes to the next of the service's `instances`, as a load balancer sends them."""
    rng = random.Random(n)
    clients = itertools.cycle(instances[n % len(instances) :] + instances[: n % len(instances)])

    def call(route: str, method: str, path: str, body: Any = None) -> Coroutine[Any, Any, Any]:
        return send(next(clients), stats, route, method, path, body)

    user = f"soak-{n}"
    topic = catalogue.categories[n % len(catalogue.categories)]
    history = {
        "user_id": user,
        "name": f"Listener {n}",
        "listening_history": f"I listen to {topic} episodes on my commute, the longer the better.",
        "listened_podcast_ids": rng.sample(catalogue.by_category[topic], 2),
    }
    await call("POST update_user_history", "POST", "/api/update_user_history", history)
    seq, in_flight = 0, []
    while time.perf_counter() < deadline:
        seq += 1
        query = f"/api/recommend_podcasts?user_id={user}&limit={mix.page_size}"
        if rng.random() < mix.category_share:
            query += f"&category={rng.choice(catalogue.categories)}"
        page = await call("GET recommend_podcasts", "GET", query)
        await asyncio.gather(*in_flight)  # at most one page's events in flight
        items = (page or {}).get("recommendations", [])
        events = page_events(user, items, mix.feedback_per_page, rng, seq)
        if events and rng.random() < mix.bulk_share:
            posts = [call("POST feedback[]", "POST", "/api/feedback", events)]
        else:
            posts = [call("POST feedback", "POST", "/api/feedback", e) for e in events]
        in_flight = [asyncio.create_task(post) for post in posts]
        if not mix.background_feedback:
            await asyncio.gather(*in_flight)
        if rng.random() < mix.search_share:
            words = rng.choice(SEARCHES).replace(" ", "+")
            await call("GET search", "GET", f"/api/search?q={words}&user_id={user}&limit=5")
        if rng.random() < mix.history_share:
            update: dict[str, Any] = {"user_id": user}
            if items:
                update["listened_podcast_ids"] = [rng.choice(items)["podcast_id"]]
            if rng.random() < 0.3 or not items:
                update["listening_history"] = f"Lately {rng.choice(catalogue.categories)} and {topic}."
            await call("POST update_user_history", "POST", "/api/update_user_history", update)
        if rng.random() < mix.add_share:
            title, transcript = rng.choice(catalogue.texts)
            episode = {
                "external_id": f"{user}-episode-{seq}",
                "title": f"{title} (again, {user} #{seq})",
                "transcript": f"{transcript} Recorded again for listener {n}, page {seq}.",
                "category": topic,
            }
            await call("POST add_podcast", "POST", "/api/add_podcast", episode)
        if rng.random() < mix.health_share:
            await call("GET health", "GET", "/api/health")
    await asyncio.gather(*in_flight)


async def _run(base_urls: list[str], clients: int, seconds: float, mix: Mix, catalogue: Catalogue) -> Stats:
    stats = Stats()
    connections = clients * (mix.feedback_per_page + 1)  # a page and its events in flight
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with contextlib.AsyncExitStack() as stack:
        instances = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=120, limits=limits))
            for url in base_urls
        ]
        deadline = time.perf_counter() + seconds
        listeners = [listener(instances, stats, n, deadline, mix, catalogue) for n in range(clients)]
        await asyncio.gather(*listeners)
    return stats


def run(base_urls: list[str], clients: int, seconds: float, mix: Mix, catalogue: Catalogue) -> Stats:
    """`clients` listeners for `seconds` against the service's instances at `base_urls`."""
    return asyncio.run(_run(base_urls, clients, seconds, mix, catalogue))
