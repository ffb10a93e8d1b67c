"""The floor of a recommendation: what one costs with everything but the database taken away.

Each client thread runs, per request, the store's own candidate query
(`store.candidates.candidate_podcasts`: the HNSW probe for the service's candidate count, at the
default ef_search) for a listener's stored profile vector, then inserts `limit` suggestions
(`store.suggestions.insert_suggestions`), in one transaction committed asynchronously
(`store.pages.commit_asynchronously`), as the service commits its log. No HTTP, no Python
ranking, no other query: a recommend figure divided by this one is the share of the physical
limit the service reaches.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import psycopg2

import db_utils
from config import Settings
from recommender import store
from recommender.service.pages import CANDIDATES_PER_SLOT, MIN_CANDIDATES
from recommender.store.suggestions import Suggestion
from recommender.store.users import User

EF_SEARCH = Settings.model_fields["hnsw_ef_search"].default


def connect(dsn: str) -> Any:
    conn = psycopg2.connect(dsn)
    db_utils.register_vector_types(conn)
    return conn


def _client(dsn: str, users: list[User], limit: int, until: float, latencies: list[float]) -> None:
    conn = connect(dsn)
    wanted = max(limit * CANDIDATES_PER_SLOT, MIN_CANDIDATES)
    n = 0
    try:
        while time.perf_counter() < until:
            user = users[n % len(users)]
            n += 1
            started = time.perf_counter()
            with conn:
                store.pages.commit_asynchronously(conn)
                found = store.candidates.candidate_podcasts(
                    conn,
                    user.embedding,
                    wanted,
                    user_id=user.id,
                    taste=None,
                    excluded=[],
                    reasons_valid_from=user.reasons_valid_from,
                    ef_search=EF_SEARCH,
                )
                suggestions = [
                    Suggestion(c.podcast_id, c.similarity, rank, "floor", "similar", "fallback")
                    for rank, c in enumerate(found[:limit], start=1)
                ]
                store.suggestions.insert_suggestions(conn, user.id, "floor", suggestions)
            latencies.append(time.perf_counter() - started)
    finally:
        conn.close()


def measure(dsn: str, user_ids: list[str], clients: int, seconds: float, limit: int) -> dict[str, Any]:
    """`clients` threads for `seconds`, cycling through the listeners' stored profile vectors."""
    conn = connect(dsn)
    with conn:
        users = [user for uid in user_ids if (user := store.users.get(conn, uid)) is not None]
    conn.close()
    latencies: list[list[float]] = [[] for _ in range(clients)]
    until = time.perf_counter() + seconds
    started = time.perf_counter()
    threads = [
        threading.Thread(target=_client, args=(dsn, users[c::clients] or users, limit, until, latencies[c]))
        for c in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    every = np.array([x for per_client in latencies for x in per_client]) * 1000
    p50, p95 = np.percentile(every, [50, 95])
    return {
        "clients": clients,
        "requests": len(every),
        "p50_ms": round(float(p50), 1),
        "p95_ms": round(float(p95), 1),
        "rps": round(len(every) / elapsed, 1),
    }
