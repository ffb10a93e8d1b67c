"""The collaborative model's refresh at scale: time, memory, and requests served meanwhile.

    python -m bench.collab              # 100k episodes, 100k listeners, 10M events
    python -m bench.collab --quick      # 10k episodes, 10k listeners, 1M events

Builds (once, then cached like bench/catalog.py) a migrated database on the bench's embedded
Postgres with ready episodes (the catalog generator's clustered vectors, no HNSW index: the
refresh never reads it) and synthetic behaviour: listeners with one to three taste topics,
lognormal activity, Zipf-like popularity within a topic, 15 % of events off-taste; listens go
to `user_listens` (one per listener and episode), the rest to `feedback_events` as complete /
like (+1), skip (-0.3), dislike (-1), all by binary COPY.

Then runs `collaborative.refresh_if_due(force=True)` in a fresh subprocess, which reports its
wall time, peak RSS over its post-import baseline and the time of each step (the functions of
`collaborative` are wrapped with timers there, nothing is changed in them), while this process
probes the request-time queries (`listener_items` + `neighbour_scores`) on its own connection,
before, during and after the refresh.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2

import db_utils
from bench import catalog, report
from bench.db import connect, ensure_database

GENERATOR_VERSION = 1  # bump when the data changes, so cached databases are rebuilt
KINDS = ("listen", "complete", "like", "skip", "dislike")
WEIGHTS = (1.0, 1.0, 1.0, -0.3, -1.0)  # recommender.EVENT_WEIGHTS; a listen counts +1
IN_TASTE = (0.45, 0.25, 0.12, 0.15, 0.03)  # kind mix on a listener's own topics
OFF_TASTE = (0.35, 0.10, 0.03, 0.37, 0.15)  # and elsewhere
OFF_TASTE_SHARE = 0.15
EPOCH_2000 = 946_684_800  # Postgres' binary timestamps count microseconds from 2000-01-01 UTC
COPY_ROWS = 1_000_000
PROBE_CANDIDATES = 40  # what recommend asks for: max(limit * 4, 20) with limit 10
PROBE_PAUSE = 0.05  # seconds between probes: about 15 requests/s, not a core spinning


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


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


# --- synthetic behaviour --------------------------------------------------------------------


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


# --- binary COPY ----------------------------------------------------------------------------


def binary_rows(*columns: np.ndarray) -> bytes:
    """COPY ... (FORMAT binary) rows of fixed-width columns (big-endian numbers, bytes), built
    as one numpy record array."""
    fields = [("count", ">i2")]
    for i, column in enumerate(columns):
        fields += [(f"length{i}", ">i4"), (f"value{i}", column.dtype.newbyteorder(">"))]
    rows = np.empty(len(columns[0]), np.dtype(fields))
    rows["count"] = len(columns)
    for i, column in enumerate(columns):
        rows[f"length{i}"] = column.dtype.itemsize
        rows[f"value{i}"] = column
    return rows.tobytes()


def copy_rows(cur, table: str, columns: str, *values: np.ndarray) -> None:
    data = catalog.COPY_HEADER + binary_rows(*values) + b"\xff\xff"
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
    out = []
    for table, index, definition, constraint, constraint_def in cur.fetchall():
        if constraint:
            out.append(
                (
                    f"ALTER TABLE {table} DROP CONSTRAINT {constraint}",
                    f"ALTER TABLE {table} ADD CONSTRAINT {constraint} {constraint_def}",
                )
            )
        else:
            out.append((f"DROP INDEX {index}", definition))
    return out


# --- building and caching -------------------------------------------------------------------


def cached(dsn: str, spec: Spec) -> dict[str, Any] | None:
    return catalog.cached_record(dsn, "collab", asdict(spec), GENERATOR_VERSION)


def build(server: Any, spec: Spec) -> dict[str, Any]:
    """Make sure database `spec.database` holds the data of `spec`; returns its record."""
    dsn = ensure_database(server, spec.database)
    done = cached(dsn, spec)
    if done:
        log(f"{spec.database}: cached ({spec.episodes} episodes, {spec.events} events)")
        return {**done, "dsn": dsn}
    log(f"{spec.database}: building {spec.episodes} episodes, {spec.users} listeners, {spec.events} events")
    dsn = catalog.recreate_database(server, spec.database)
    conn = connect(dsn)
    timings: dict[str, float] = {}
    try:
        with conn:
            db_utils.migrate(conn, spec.dims, catalog.EMBEDDING_MODEL)
        conn.autocommit = True
        with conn.cursor() as cur:
            started = time.perf_counter()
            cur.execute(f"DROP INDEX IF EXISTS {catalog.INDEX_NAME}")  # the refresh never uses it
            cspec = catalog.Spec(spec.episodes, spec.dims, seed=spec.seed)
            basis = catalog.make_basis(cspec)
            topics = []
            for chunk in range(-(-spec.episodes // catalog.CHUNK_ROWS)):
                vectors, clusters = catalog.episode_chunk(cspec, basis, chunk)
                stream = catalog.copy_chunk(chunk * catalog.CHUNK_ROWS + 1, vectors, clusters)
                cur.copy_expert(
                    f"COPY podcasts ({catalog.COPY_COLUMNS}) FROM STDIN WITH (FORMAT binary)", stream
                )
                topics.append(clusters)
            cur.execute("SELECT count(*), max(id) FROM podcasts")
            assert cur.fetchone() == (spec.episodes, spec.episodes), "podcast ids are not 1..N"
            width = len(str(spec.users - 1))
            user_ids = np.array([f"c{n:0{width}d}".encode() for n in range(spec.users)])
            copy_rows(cur, "users", "id", user_ids)
            timings["load_podcasts_users_s"] = time.perf_counter() - started

            started = time.perf_counter()
            events = behaviour(spec, np.concatenate(topics), time.time())
            timings["generate_s"] = time.perf_counter() - started
            log(f"{spec.database}: generated events in {timings['generate_s']:.1f} s")

            started = time.perf_counter()
            indexes = secondary_indexes(cur, ["user_listens", "feedback_events"])
            for drop, _ in indexes:
                cur.execute(drop)
            cur.execute("SET session_replication_role = replica")  # skips FK checks: valid by construction
            order = np.argsort(events["at"], kind="stable")
            listens = order[events["kind"][order] == 0]
            for part in np.array_split(listens, max(1, -(-len(listens) // COPY_ROWS))):
                copy_rows(
                    cur,
                    "user_listens",
                    "user_id, podcast_id, listened_at",
                    user_ids[events["user"][part]],
                    events["episode"][part] + 1,
                    events["at"][part],
                )
            feedback = order[events["kind"][order] > 0]
            for part in np.array_split(feedback, max(1, -(-len(feedback) // COPY_ROWS))):
                for k in range(1, len(KINDS)):
                    rows = part[events["kind"][part] == k]
                    copy_rows(
                        cur,
                        "feedback_events",
                        "user_id, podcast_id, event, weight, created_at",
                        user_ids[events["user"][rows]],
                        events["episode"][rows] + 1,
                        np.full(len(rows), KINDS[k].encode()),
                        np.full(len(rows), WEIGHTS[k], np.float32),
                        events["at"][rows],
                    )
            cur.execute("RESET session_replication_role")
            timings["copy_events_s"] = time.perf_counter() - started
            seconds = timings["copy_events_s"]
            log(f"{spec.database}: copied {len(listens)} listens, {len(feedback)} events in {seconds:.0f} s")

            started = time.perf_counter()
            cur.execute("SET maintenance_work_mem = '1GB'")
            for _, create in indexes:
                cur.execute(create)
            timings["index_s"] = time.perf_counter() - started
            started = time.perf_counter()
            cur.execute("VACUUM (ANALYZE) podcasts, users, user_listens, feedback_events")
            timings["vacuum_s"] = time.perf_counter() - started
            cur.execute("SELECT pg_database_size(current_database())")
            database_mb = cur.fetchone()[0] / 2**20
            log(f"{spec.database}: indexes {timings['index_s']:.0f} s, vacuum {timings['vacuum_s']:.0f} s")
        done = {
            "spec": asdict(spec),
            "generator": GENERATOR_VERSION,
            "migrations": catalog.migrations(),
            "listens": len(listens),
            "feedback_events": len(feedback),
            "database_mb": round(database_mb, 1),
            **{k: round(v, 1) for k, v in timings.items()},
        }
        catalog.recorded(conn)  # creates bench_catalog
        catalog.record(conn, "collab", done)
        return {**done, "dsn": dsn}
    finally:
        conn.close()


# --- the refresh, in a subprocess -----------------------------------------------------------


def maxrss_mb() -> float:
    """Peak resident set of this process's own memory, in MiB.

    `ru_maxrss` would be the right figure but Linux carries it over from the parent across
    fork + exec (the benchmark that launched us holds hundreds of MiB), so the peak is read
    from VmHWM, which belongs to the address space made by exec; ru_maxrss where there is none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class TimedCursor:
    """A cursor proxy adding the time of each statement to `seconds[label]`."""

    def __init__(self, cur: Any, seconds: dict[str, float]) -> None:
        self._cur, self._seconds = cur, seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)

    def __enter__(self) -> TimedCursor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cur.close()

    def _timed(self, method: str, sql: str, *args: Any) -> Any:
        label = "db_" + sql.split()[0].lower()
        started = time.perf_counter()
        try:
            return getattr(self._cur, method)(sql, *args)
        finally:
            self._seconds[label] = self._seconds.get(label, 0.0) + time.perf_counter() - started

    def execute(self, sql: str, *args: Any) -> Any:
        return self._timed("execute", sql, *args)

    def copy_expert(self, sql: str, *args: Any) -> Any:
        return self._timed("copy_expert", sql, *args)


class TimedConnection:
    def __init__(self, conn: Any, seconds: dict[str, float]) -> None:
        self._conn, self._seconds = conn, seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def cursor(self, *args: Any, **kwargs: Any) -> TimedCursor:
        return TimedCursor(self._conn.cursor(*args, **kwargs), self._seconds)


def child() -> None:
    """Run one forced refresh with timers around its steps; print the figures as JSON."""
    import scipy.sparse as sp

    from recommender.model import collaborative as model
    from recommender.worker import collaborative as worker

    baseline = maxrss_mb()
    steps: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}

    def step(name: str, started: float, wall: float, **extra: Any) -> None:
        seconds = time.perf_counter() - started
        steps.append({"step": name, "start": wall, "end": time.time(), "seconds": seconds, **extra})
        print(
            json.dumps({"step": name, "seconds": round(seconds, 2), "maxrss_mb": round(maxrss_mb())}),
            file=sys.stderr,
            flush=True,
        )

    read, build, top, save = worker.read_interactions, worker.build, model.top_neighbors, worker.save

    def timed_read(cur: Any, max_items: int) -> np.ndarray:
        seconds: dict[str, float] = {}
        started, wall = time.perf_counter(), time.time()
        rows = read(TimedCursor(cur, seconds), max_items)
        total = time.perf_counter() - started
        figures["interactions"] = len(rows)
        step(
            "read",
            started,
            wall,
            sql_s=seconds.get("db_copy", 0.0),
            parse_s=total - seconds.get("db_copy", 0.0),
        )
        return rows

    def timed_build(*args: Any) -> Any:
        started, wall = time.perf_counter(), time.time()
        model = build(*args)
        figures["episodes"] = 0 if model is None else len(model.episodes)
        figures["episodes_with_neighbours"] = (
            0 if model is None else sum(len(n) > 0 for n in model.neighbor_ids)
        )
        figures["neighbours_mean"] = (
            0 if model is None else float(np.mean([len(n) for n in model.neighbor_ids]))
        )
        step("build", started, wall, **figures.get("top", {}))
        return model

    products = {"seconds": 0.0, "count": 0}
    matmul = sp.csr_matrix.__matmul__

    def timed_matmul(self: Any, other: Any) -> Any:
        started = time.perf_counter()
        try:
            return matmul(self, other)
        finally:
            products["seconds"] += time.perf_counter() - started
            products["count"] += 1

    def timed_top(*args: Any) -> Any:
        products.update(seconds=0.0, count=0)
        sp.csr_matrix.__matmul__ = timed_matmul
        started = time.perf_counter()
        try:
            return top(*args)
        finally:
            sp.csr_matrix.__matmul__ = matmul
            total = time.perf_counter() - started
            figures["top"] = {
                "top_k_s": total,
                "products_s": products["seconds"],
                "blocks": products["count"] - 1,  # one product is the cost estimate
                "per_row_loop_s": total - products["seconds"],
            }

    def timed_save(conn: Any, *args: Any) -> None:
        seconds: dict[str, float] = {}
        started, wall = time.perf_counter(), time.time()
        save(TimedConnection(conn, seconds), *args)
        total = time.perf_counter() - started
        step("save", started, wall, **seconds, format_s=total - sum(seconds.values()))

    worker.read_interactions, worker.build = timed_read, timed_build
    model.top_neighbors, worker.save = timed_top, timed_save
    started = time.perf_counter()
    ran = worker.refresh_if_due(force=True)
    wall = time.perf_counter() - started
    print(
        json.dumps(
            {
                "ran": ran,
                "refresh_s": wall,
                "baseline_rss_mb": baseline,
                "peak_rss_mb": maxrss_mb(),
                "steps": steps,
                **{k: v for k, v in figures.items() if k != "top"},
            }
        )
    )


def refresh(dsn: str, probe: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run the refresh in a fresh interpreter; call `probe` in a loop until it ends."""
    env = {**os.environ, "DATABASE_URL": dsn, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.collab", "--child"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=db_utils.PROJECT_DIR,
    )
    while probe is not None and proc.poll() is None:
        probe()
    out, err = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"refresh failed:\n{err[-3000:]}")
    for line in err.splitlines():
        if line.startswith("{"):
            log(f"  refresh step {line}")
    return {**json.loads(out.strip().splitlines()[-1]), "process_s": time.perf_counter() - started}


# --- probing the request path ---------------------------------------------------------------


class Prober:
    """listener_items + neighbour_scores for random active listeners, as recommend runs them,
    on one plain connection; latencies are kept with their wall-clock time."""

    def __init__(self, dsn: str, seed: int) -> None:
        from recommender.store import collaborative

        self.collaborative = collaborative
        self.conn = psycopg2.connect(dsn)
        db_utils.register_vector_types(self.conn)
        with self.conn, self.conn.cursor() as cur:
            cur.execute(
                "SELECT id FROM users u WHERE EXISTS (SELECT 1 FROM feedback_events f WHERE f.user_id = u.id)"
            )
            self.users = [row[0] for row in cur.fetchall()]
            cur.execute("SELECT max(id) FROM podcasts")
            self.episodes = cur.fetchone()[0]
        self.rng = np.random.default_rng(seed)
        self.samples: list[
            tuple[float, float, float]
        ] = []  # (wall time, listener_items s, neighbour_scores s)
        self.items = 0
        self.scored = 0

    def __call__(self) -> None:
        user = self.users[int(self.rng.integers(len(self.users)))]
        include = sorted(set(self.rng.integers(1, self.episodes + 1, PROBE_CANDIDATES).tolist()))
        wall, started = time.time(), time.perf_counter()
        with self.conn:
            items = self.collaborative.listener_items(self.conn, user)
            middle = time.perf_counter()
            excluded = [i["podcast_id"] for i in items]
            scores = self.collaborative.neighbour_scores(
                self.conn, items, PROBE_CANDIDATES, include=include, excluded=excluded, category=None
            )
        self.samples.append((wall, middle - started, time.perf_counter() - middle))
        self.items += len(items)
        self.scored += len(scores)
        time.sleep(PROBE_PAUSE)

    def run_for(self, seconds: float) -> None:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            self()

    def close(self) -> None:
        self.conn.close()


def latency(
    samples: list[tuple[float, float, float]], start: float = 0.0, end: float = float("inf")
) -> dict[str, Any]:
    """p50/p95/max of the probes that started in [start, end), and the p50 of each query."""
    parts = np.array([(a, b) for t, a, b in samples if start <= t < end]).reshape(-1, 2) * 1000
    if not len(parts):
        return {"probes": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}
    ms = parts.sum(axis=1)
    p50, p95 = np.percentile(ms, [50, 95])
    return {
        "probes": len(ms),
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "max_ms": round(float(ms.max()), 1),
        "listener_items_p50_ms": round(float(np.median(parts[:, 0])), 2),
        "neighbour_scores_p50_ms": round(float(np.median(parts[:, 1])), 2),
    }


def engagement_table(dsn: str) -> dict[str, Any]:
    conn = connect(dsn, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT (SELECT count(*) FROM podcast_engagement),"
                " pg_total_relation_size('podcast_engagement'), m.episodes, m.refresh_seconds"
                " FROM collaborative_model m"
            )
            rows, size, episodes, seconds = cur.fetchone()
            cur.execute(
                "SELECT temp_bytes, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"
                " FROM pg_stat_database WHERE datname = current_database()"
            )
            temp, wal = cur.fetchone()
    finally:
        conn.close()
    return {
        "rows": rows,
        "total_mb": round(size / 2**20, 1),
        "model_episodes": episodes,
        "stored_refresh_s": seconds,
        "temp_bytes": temp,
        "wal_bytes": float(wal),
    }


def measure(server: Any, spec: Spec, probe_seconds: float) -> dict[str, Any]:
    """Build (or reuse) the database, then: probes alone, a refresh with probes, probes alone."""
    info = build(server, spec)
    dsn = info["dsn"]
    if not engagement_table(dsn)["rows"]:
        log(f"{spec.database}: no model yet, a first refresh (not measured)")
        refresh(dsn)
    prober = Prober(dsn, spec.seed)
    try:
        log(f"{spec.database}: probing {probe_seconds:.0f} s with no refresh running")
        prober.run_for(probe_seconds)
        idle_end = time.time()
        before = engagement_table(dsn)
        log(f"{spec.database}: refresh with probes")
        result = refresh(dsn, prober)
        after = engagement_table(dsn)
        refresh_end = time.time()
        log(f"{spec.database}: probing {probe_seconds:.0f} s after the refresh")
        prober.run_for(probe_seconds)
    finally:
        prober.close()
    steps = {s["step"]: s for s in result["steps"]}
    during = {name: latency(prober.samples, s["start"], s["end"]) for name, s in steps.items()}
    row = {
        "episodes": spec.episodes,
        "users": spec.users,
        "events": spec.events,
        "listens": info["listens"],
        "feedback_events": info["feedback_events"],
        "database_mb": info["database_mb"],
        "interactions": result["interactions"],
        "episodes_with_engagement": result["episodes"],
        "episodes_with_neighbours": result["episodes_with_neighbours"],
        "neighbours_mean": round(result["neighbours_mean"], 1),
        "refresh_s": round(result["refresh_s"], 1),
        "process_s": round(result["process_s"], 1),
        "peak_rss_mb": round(result["peak_rss_mb"] - result["baseline_rss_mb"], 1),
        "baseline_rss_mb": round(result["baseline_rss_mb"], 1),
        "steps": {
            name: {k: round(v, 2) for k, v in s.items() if k not in ("step", "start", "end")}
            for name, s in steps.items()
        },
        "engagement_rows": after["rows"],
        "engagement_mb": after["total_mb"],
        "postgres_temp_mb": round((after["temp_bytes"] - before["temp_bytes"]) / 2**20, 1),
        "wal_mb": round((after["wal_bytes"] - before["wal_bytes"]) / 2**20, 1),
        "probe_idle": latency(prober.samples, 0, idle_end),
        "probe_during": latency(prober.samples, idle_end, refresh_end),
        "probe_during_step": during,
        "probe_after": latency(prober.samples, refresh_end),
        "probe_items_mean": round(prober.items / max(1, len(prober.samples)), 1),
        "probe_scored_mean": round(prober.scored / max(1, len(prober.samples)), 1),
        "data_build": {k: v for k, v in info.items() if k.endswith("_s")},
    }
    log(
        f"{spec.database}: refresh {row['refresh_s']} s, peak +{row['peak_rss_mb']} MiB,"
        f" {row['interactions']} interactions, {row['episodes_with_neighbours']} episodes with neighbours,"
        f" podcast_engagement {row['engagement_rows']} rows / {row['engagement_mb']} MiB;"
        f" probe p50/p95/max idle {row['probe_idle']}, during {row['probe_during']}"
    )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k episodes x 1M events")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child()
        return 0
    from bench.db import start_server

    server = start_server()
    spec = QUICK if args.quick else FULL
    row = {
        **measure(server, spec, 8 if args.quick else 20),
        "measured": time.strftime("%Y-%m-%d %H:%M"),
        "code": report.code_version(),
    }
    report.save_collaborative([row], quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
