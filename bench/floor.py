"""The floor of a recommendation: what one costs with everything but the database taken away.

Each client thread runs, per request, the service's own candidate query (`store.candidates.CANDIDATE_SQL`
on the HNSW index, the same ef_search and candidate count) for a listener's profile vector, then
inserts `limit` suggestions, in one transaction committed as the service commits its log. No
HTTP, no Python ranking, no other query: a recommend figure divided by this one is the share of
the physical limit the service reaches.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import psycopg2
import psycopg2.extras

import db_utils
from config import Settings
from recommender import store
from recommender.service.pages import CANDIDATES_PER_SLOT, MIN_CANDIDATES

SOURCE = """
    SELECT p.id AS podcast_id FROM podcasts p
    WHERE p.status = 'ready' AND p.id <> ALL(%(excluded)s::bigint[])
    ORDER BY p.embedding <=> %(q)s LIMIT %(k)s
"""


def _client(dsn: str, users: list[tuple[str, Any]], limit: int, until: float, latencies: list[float]) -> None:
    conn = psycopg2.connect(dsn)
    db_utils.register_vector_types(conn)
    sql = store.candidates.CANDIDATE_SQL.replace("{source}", SOURCE)
    wanted = max(limit * CANDIDATES_PER_SLOT, MIN_CANDIDATES)
    n = 0
    try:
        while time.perf_counter() < until:
            user_id, vector = users[n % len(users)]
            n += 1
            started = time.perf_counter()
            with conn, conn.cursor() as cur:
                cur.execute(  # the log's commit and the probe's plan as the app's
                    "SELECT set_config('synchronous_commit', 'off', true), "
                    + store.candidates.PROBE_SETTINGS,
                    (str(Settings.model_fields["hnsw_ef_search"].default),),
                )
                params = {"q": vector, "k": wanted, "excluded": [], "user_id": user_id, "valid_from": None}
                cur.execute(sql, params)
                rows = cur.fetchall()[:limit]
                psycopg2.extras.execute_values(
                    cur,
                    "INSERT INTO suggested_podcasts (user_id, podcast_id, similarity, rank, reason, variant,"
                    " strategy, reason_source) VALUES %s",
                    [(user_id, r[0], 1 - r[5], rank, "floor", "floor", "similar", "fallback")
                     for rank, r in enumerate(rows, start=1)],
                )  # fmt: skip
            latencies.append(time.perf_counter() - started)
    finally:
        conn.close()


def measure(dsn: str, user_ids: list[str], clients: int, seconds: float, limit: int) -> dict[str, Any]:
    """`clients` threads for `seconds`, cycling through the listeners' stored profile vectors."""
    conn = psycopg2.connect(dsn)
    db_utils.register_vector_types(conn)
    with conn.cursor() as cur:
        cur.execute("SELECT id, embedding FROM users WHERE id = ANY(%s)", (user_ids,))
        users = cur.fetchall()
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
    return {
        "clients": clients,
        "requests": len(every),
        "p50_ms": round(float(np.percentile(every, 50)), 1),
        "p95_ms": round(float(np.percentile(every, 95)), 1),
        "rps": round(len(every) / elapsed, 1),
    }
