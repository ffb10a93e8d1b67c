"""Synthetic listening behaviour for the collaborative refresh benchmark (`bench/collab.py`).

A migrated database on the bench's embedded Postgres with ready episodes (the catalog
generator's clustered vectors, no HNSW index: the refresh never reads it) and behaviour:
listeners with one to three taste topics, lognormal activity, Zipf-like popularity within a
topic, 15 % of events off-taste; listens go to `user_listens` (one per listener and episode),
the rest to `feedback_events` as complete / like (+1), skip (-0.3), dislike (-1), all by binary
COPY. Built once, then cached like the catalogs (bench/catalog.py).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench import catalog
from bench.db import connect, create_database, ensure_database
from bench.report import log

GENERATOR_VERSION = 1  # bump when the data changes, so cached databases are rebuilt
KINDS = ("listen", "complete", "like", "skip", "dislike")
WEIGHTS = (1.0, 1.0, 1.0, -0.3, -1.0)  # the app's event weights; a listen counts +1
IN_TASTE = (0.45, 0.25, 0.12, 0.15, 0.03)  # kind mix on a listener's own topics
OFF_TASTE = (0.35, 0.10, 0.03, 0.37, 0.15)  # and elsewhere
OFF_TASTE_SHARE = 0.15
EPOCH_2000 = 946_684_800  # Postgres' binary timestamps count microseconds from 2000-01-01 UTC
COPY_ROWS = 1_000_000


@dataclass(frozen=True)
class Spec:
    episodes: int
    users: int
    events: int
    dims: int = 384
    days: float = 180.0
    seed: int = 20_240_601

    @property
    def database(self) -> str:
        return f"bench_collab_{self.episodes}_{self.events}"


FULL = Spec(100_000, 100_000, 10_000_000)
QUICK = Spec(10_000, 10_000, 1_000_000)


def topic_sampler(topics: np.ndarray, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """A function drawing, per given topic, an episode of it (0-based) by Zipf-like popularity
    (weight 1/rank^0.9, ranks shuffled within the topic): one searchsorted over all topics."""
    perm = rng.permutation(len(topics))
    order = perm[np.argsort(topics[perm], kind="stable")]
    sorted_topics = topics[order]
    starts = np.searchsorted(sorted_topics, sorted_topics, side="left")
    weight = (np.arange(len(topics)) - starts + 1.0) ** -0.9
    within = np.cumsum(weight)
    within -= np.concatenate([[0.0], within])[starts]  # cumulative within the topic
    ends = np.searchsorted(sorted_topics, sorted_topics, side="right") - 1
    keys = sorted_topics + within / within[ends]  # in (topic, topic + 1], last exactly topic + 1

    def draw(wanted: np.ndarray) -> np.ndarray:
        found = np.searchsorted(keys, wanted + rng.random(len(wanted)), side="right")
        return order[np.minimum(found, len(keys) - 1)]  # t + u may round up to t + 1

    return draw


def behaviour(spec: Spec, topics: np.ndarray, now: float) -> dict[str, np.ndarray]:
    """`spec.events` events: listener (0-based), episode (0-based), kind (index of KINDS), time
    (µs since 2000). Repeated listens of one episode by one listener become `complete`."""
    rng = np.random.default_rng([spec.seed, 1])
    mass = np.bincount(topics, minlength=topics.max() + 1) / len(topics)
    activity = rng.lognormal(0.0, 1.2, spec.users)
    counts = rng.multinomial(spec.events, activity / activity.sum())
    user = np.repeat(np.arange(spec.users, dtype=np.int64), counts)
    tastes = rng.choice(len(mass), size=(spec.users, 3), p=mass)
    picked = tastes[user, rng.integers(0, rng.integers(1, 4, spec.users)[user])]
    off = rng.random(spec.events) < OFF_TASTE_SHARE
    picked[off] = rng.choice(len(mass), size=int(off.sum()), p=mass)
    episode = topic_sampler(topics, rng)(picked)
    kind = np.where(
        off,
        rng.choice(len(KINDS), spec.events, p=OFF_TASTE),
        rng.choice(len(KINDS), spec.events, p=IN_TASTE),
    ).astype(np.int8)
    age_days = spec.days * rng.random(spec.events) ** 2  # more of it lately
    at = ((now - EPOCH_2000 - age_days * 86_400) * 1e6).astype(np.int64)
    listens = np.flatnonzero(kind == 0)
    _, first = np.unique(user[listens] * spec.episodes + episode[listens], return_index=True)
    repeated = np.ones(len(listens), bool)
    repeated[first] = False
    kind[listens[repeated]] = 1
    return {"user": user, "episode": episode, "kind": kind, "at": at}


def copy_rows(cur, table: str, columns: str, *values: np.ndarray) -> None:
    """COPY ... (FORMAT binary) rows of fixed-width columns (big-endian numbers, bytes), built
    as one numpy record array."""
    fields = [("count", ">i2")]
    for i, column in enumerate(values):
        fields += [(f"length{i}", ">i4"), (f"value{i}", column.dtype.newbyteorder(">"))]
    rows = np.empty(len(values[0]), np.dtype(fields))
    rows["count"] = len(values)
    for i, column in enumerate(values):
        rows[f"length{i}"] = column.dtype.itemsize
        rows[f"value{i}"] = column
    data = catalog.COPY_HEADER + rows.tobytes() + b"\xff\xff"
    cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT binary)", io.BytesIO(data))


def secondary_indexes(cur, tables: list[str]) -> list[tuple[str, str]]:
    """(drop, create) statements of the tables' indexes other than primary keys."""
    cur.execute(
        """
        SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid),
               c.conname, pg_get_constraintdef(c.oid)
        FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype = 'u'
        WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary
        """,
        (tables,),
    )
    return [
        (
            f"ALTER TABLE {table} DROP CONSTRAINT {constraint}",
            f"ALTER TABLE {table} ADD CONSTRAINT {constraint} {cdef}",
        )
        if constraint
        else (f"DROP INDEX {index}", definition)
        for table, index, definition, constraint, cdef in cur.fetchall()
    ]


def copy_events(cur, events: dict[str, np.ndarray], user_ids: np.ndarray) -> tuple[int, int]:
    """Listens into `user_listens`, the other kinds into `feedback_events`, oldest first, with
    the tables' secondary indexes dropped meanwhile; returns (listens, feedback events)."""
    indexes = secondary_indexes(cur, ["user_listens", "feedback_events"])
    for drop, _ in indexes:
        cur.execute(drop)
    cur.execute("SET session_replication_role = replica")  # skips FK checks: valid by construction
    order = np.argsort(events["at"], kind="stable")
    listens, feedback = order[events["kind"][order] == 0], order[events["kind"][order] > 0]
    user, episode, at = user_ids[events["user"]], events["episode"] + 1, events["at"]
    for part in np.array_split(listens, max(1, -(-len(listens) // COPY_ROWS))):
        columns = "user_id, podcast_id, occurred_at, created_at"  # stored when they happened
        copy_rows(cur, "user_listens", columns, user[part], episode[part], at[part], at[part])
    for part in np.array_split(feedback, max(1, -(-len(feedback) // COPY_ROWS))):
        for k in range(1, len(KINDS)):
            rows = part[events["kind"][part] == k]
            kind, weight = np.full(len(rows), KINDS[k].encode()), np.full(len(rows), WEIGHTS[k], np.float32)
            columns = "user_id, podcast_id, event, weight, occurred_at, created_at"
            values = user[rows], episode[rows], kind, weight, at[rows], at[rows]
            copy_rows(cur, "feedback_events", columns, *values)
    cur.execute("RESET session_replication_role")
    cur.execute("SELECT net_all_engagements()")  # the triggers were off with the FK checks
    cur.execute("SET maintenance_work_mem = '1GB'")
    for _, create in indexes:
        cur.execute(create)
    return len(listens), len(feedback)


def build(server: Any, spec: Spec) -> dict[str, Any]:
    """Make sure database `spec.database` holds the data of `spec`; returns its record."""
    dsn = ensure_database(server, spec.database)
    done = catalog.cached(dsn, "collab", asdict(spec), GENERATOR_VERSION)
    if done:
        log(f"{spec.database}: cached ({spec.episodes} episodes, {spec.events} events)")
        return {**done, "dsn": dsn}
    log(f"{spec.database}: building {spec.episodes} episodes, {spec.users} listeners, {spec.events} events")
    dsn = create_database(server, spec.database)
    conn = connect(dsn)
    timings: dict[str, float] = {}
    try:
        started = time.perf_counter()
        _, topics = catalog.load_episodes(conn, catalog.Spec(spec.episodes, spec.dims, seed=spec.seed))
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), max(id) FROM podcasts")
            assert cur.fetchone() == (spec.episodes, spec.episodes), "podcast ids are not 1..N"
            width = len(str(spec.users - 1))
            user_ids = np.array([f"c{n:0{width}d}".encode() for n in range(spec.users)])
            copy_rows(cur, "users", "id", user_ids)
            timings["load_podcasts_users_s"] = time.perf_counter() - started
            started = time.perf_counter()
            events = behaviour(spec, topics, time.time())
            timings["generate_s"] = time.perf_counter() - started
            log(f"{spec.database}: generated events in {timings['generate_s']:.1f} s")
            started = time.perf_counter()
            listens, feedback = copy_events(cur, events, user_ids)
            timings["copy_events_s"] = time.perf_counter() - started
            log(f"{spec.database}: copied {listens} listens, {feedback} events and indexed them")
            started = time.perf_counter()
            cur.execute("VACUUM (ANALYZE) podcasts, users, user_listens, feedback_events")
            timings["vacuum_s"] = time.perf_counter() - started
            cur.execute("SELECT pg_database_size(current_database())")
            database_mb = cur.fetchone()[0] / 2**20
        done = {
            "spec": asdict(spec),
            "generator": GENERATOR_VERSION,
            "migrations": catalog.migrations(),
            "listens": listens,
            "feedback_events": feedback,
            "database_mb": round(database_mb, 1),
            **{k: round(v, 1) for k, v in timings.items()},
        }
        catalog.record(conn, "collab", done)
        return {**done, "dsn": dsn}
    finally:
        conn.close()
