"""The collaborative model's refresh at scale: time, memory, and requests served meanwhile.

    python -m bench.collab              # 100k episodes, 100k listeners, 10M events
    python -m bench.collab --quick      # 10k episodes, 10k listeners, 1M events

On the synthetic behaviour of `bench/collab_data.py`, runs the worker's
`collaborative.refresh_if_due(force=True)` in a fresh subprocess, which reports its wall time,
peak RSS over its post-import baseline and the time of each step: the functions the worker
calls (`store.collaborative.read_snapshot`, `collaborative.model_of` and its `top_neighbors`,
`store.collaborative.save`) are wrapped with timers there, nothing is changed in them. Meanwhile
this process probes the request-time queries (`listener_items` + `neighbour_scores`) on its own
connection, before, during and after the refresh.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import psycopg2.extensions

import db_utils
from bench import results_md
from bench.collab_data import FULL, QUICK, Spec, build
from bench.db import connect, scalar, start_server
from bench.report import log, stamp
from recommender import store

PROBE_CANDIDATES = 40  # what recommend asks for: max(limit * 4, 20) with limit 10
PROBE_PAUSE = 0.05  # seconds between probes: about 15 requests/s, not a core spinning
SQL_SECONDS: dict[str, float] = {}  # per statement verb ("db_copy", ...), of the step being timed


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


class TimedCursor(psycopg2.extensions.cursor):
    """A cursor adding the time of each statement to SQL_SECONDS["db_<its first word>"]."""

    def _timed(self, run: Callable[[], Any], sql: str) -> Any:
        started = time.perf_counter()
        try:
            return run()
        finally:
            label = "db_" + sql.split()[0].lower()
            SQL_SECONDS[label] = SQL_SECONDS.get(label, 0.0) + time.perf_counter() - started

    def execute(self, query: Any, vars: Any = None) -> Any:
        return self._timed(lambda: super(TimedCursor, self).execute(query, vars), query)

    def copy_expert(self, sql: Any, file: Any, size: int = 8192) -> Any:
        return self._timed(lambda: super(TimedCursor, self).copy_expert(sql, file, size), sql)


def child() -> None:
    """Run one forced refresh with timers around its steps; print the figures as JSON."""
    import scipy.sparse as sp

    from recommender.model import collaborative, factors
    from recommender.worker import collaborative as worker

    baseline = maxrss_mb()
    steps: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}

    def timed(module: Any, name: str, step: str, fields: Callable[[Any, float], dict[str, Any]]) -> None:
        """Wrap `module.name` (what the worker calls) as the step `step`, with `fields(result, s)`."""
        original = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if isinstance(args[0], psycopg2.extensions.connection):
                args[0].cursor_factory = TimedCursor
            SQL_SECONDS.clear()
            started, wall = time.perf_counter(), time.time()
            result = original(*args, **kwargs)
            seconds = time.perf_counter() - started
            steps.append({"step": step, "start": wall, "end": time.time(), "seconds": seconds})
            steps[-1].update(fields(result, seconds))
            out = {"step": step, "seconds": round(seconds, 2), "maxrss_mb": round(maxrss_mb())}
            print(json.dumps(out), file=sys.stderr, flush=True)
            return result

        setattr(module, name, wrapper)

    def read(snapshot: Any, seconds: float) -> dict[str, Any]:
        figures["interactions"] = len(snapshot.interactions.listener)
        return {"sql_s": SQL_SECONDS.get("db_copy", 0.0), "parse_s": seconds - sum(SQL_SECONDS.values())}

    def built(model: Any, seconds: float) -> dict[str, Any]:
        neighbours = [] if model is None else [len(n) for n in model.neighbor_ids]
        figures["episodes"] = len(neighbours)
        figures["episodes_with_neighbours"] = sum(n > 0 for n in neighbours)
        figures["neighbours_mean"] = float(np.mean(neighbours)) if neighbours else 0.0
        return figures.pop("top", {})

    def saved(_: Any, seconds: float) -> dict[str, Any]:
        return {**SQL_SECONDS, "format_s": seconds - sum(SQL_SECONDS.values())}

    products = {"seconds": 0.0, "count": 0}
    matmul, top = sp.csr_matrix.__matmul__, collaborative.top_neighbors

    def timed_matmul(self: Any, other: Any) -> Any:
        started = time.perf_counter()
        try:
            return matmul(self, other)
        finally:
            products["seconds"] += time.perf_counter() - started
            products["count"] += 1

    def timed_top(*args: Any) -> Any:  # not a step: its share of the build
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

    timed(store.collaborative, "read_snapshot", "read", read)

    def chose(learned: Any, _: float) -> dict[str, Any]:
        figures["signal"] = learned.signal
        figures["signal_recall"] = learned.validation_recall
        figures["ease_regularization"] = learned.ease.regularization
        return {"signals_tried": len(learned.validation_recall)}

    timed(collaborative, "learn_signal", "signal", chose)
    timed(collaborative, "model_of", "build", built)
    timed(store.collaborative, "save", "save", saved)
    timed(factors, "train", "factors", lambda trained, _: {"episodes_with_factors": len(trained.episodes)})
    timed(store.factors, "save", "save_factors", saved)
    collaborative.top_neighbors = timed_top
    started = time.perf_counter()
    ran = worker.refresh_if_due(force=True)
    wall = time.perf_counter() - started
    done = {"ran": ran, "refresh_s": wall, "baseline_rss_mb": baseline, "peak_rss_mb": maxrss_mb()}
    print(json.dumps({**done, "steps": steps, **figures}))


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


class Prober:
    """listener_items + neighbour_scores for random active listeners, as recommend runs them,
    on one plain connection; latencies are kept with their wall-clock time."""

    def __init__(self, dsn: str, seed: int) -> None:
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
        self.samples: list[tuple[float, float, float]] = []  # wall time, listener_items s, neighbour_scores s
        self.items = self.scored = 0

    def __call__(self) -> None:
        user = self.users[int(self.rng.integers(len(self.users)))]
        include = sorted(set(self.rng.integers(1, self.episodes + 1, PROBE_CANDIDATES).tolist()))
        wall, started = time.time(), time.perf_counter()
        with self.conn:
            items = store.collaborative.listener_items(self.conn, user)
            middle = time.perf_counter()
            excluded = [i.podcast_id for i in items]
            scores = store.collaborative.neighbour_scores(
                self.conn, items, PROBE_CANDIDATES, include=include, excluded=excluded, filters=None
            )
        self.samples.append((wall, middle - started, time.perf_counter() - middle))
        self.items += len(items)
        self.scored += len(scores)
        time.sleep(PROBE_PAUSE)

    def run_for(self, seconds: float) -> None:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            self()

    def latency(self, start: float = 0.0, end: float = float("inf")) -> dict[str, Any]:
        """p50/p95/max of the probes that started in [start, end), and the p50 of each query."""
        parts = np.array([(a, b) for t, a, b in self.samples if start <= t < end]).reshape(-1, 2) * 1000
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
    """The stored model's rows and size, and the database's temp and WAL bytes so far."""
    with connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM podcast_engagement), pg_total_relation_size('podcast_engagement'),"
            " temp_bytes, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"
            " FROM pg_stat_database WHERE datname = current_database()"
        )
        rows, size, temp, wal = cur.fetchone()
    conn.close()
    return {"rows": rows, "total_mb": round(size / 2**20, 1), "temp_bytes": temp, "wal_bytes": float(wal)}


def measure(server: Any, spec: Spec, probe_seconds: float) -> dict[str, Any]:
    """Build (or reuse) the database, then: probes alone, a refresh with probes, probes alone."""
    info = build(server, spec)
    dsn = info["dsn"]
    if not engagement_table(dsn)["rows"]:
        log(f"{spec.database}: no model yet, a first refresh (not measured)")
        refresh(dsn)
    scalar(dsn, "VACUUM FULL podcast_engagement")  # as built: the refresh leaves one older model dead
    scalar(dsn, "CHECKPOINT")  # its writes flushed now, not as I/O stalls in the probes that follow
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
        prober.conn.close()
    steps = {s.pop("step"): s for s in result["steps"]}
    row = {
        **{k: getattr(spec, k) for k in ("episodes", "users", "events")},
        **{k: info[k] for k in ("listens", "feedback_events", "database_mb")},
        "interactions": result["interactions"],
        "episodes_with_engagement": result["episodes"],
        "episodes_with_neighbours": result["episodes_with_neighbours"],
        "neighbours_mean": round(result["neighbours_mean"], 1),
        **{k: round(result[k], 1) for k in ("refresh_s", "process_s", "baseline_rss_mb")},
        "peak_rss_mb": round(result["peak_rss_mb"] - result["baseline_rss_mb"], 1),
        "steps": {
            name: {k: round(v, 2) for k, v in s.items() if k not in ("start", "end")}
            for name, s in steps.items()
        },
        "engagement_rows": after["rows"],
        "engagement_mb": after["total_mb"],
        "postgres_temp_mb": round((after["temp_bytes"] - before["temp_bytes"]) / 2**20, 1),
        "wal_mb": round((after["wal_bytes"] - before["wal_bytes"]) / 2**20, 1),
        "probe_idle": prober.latency(0, idle_end),
        "probe_during": prober.latency(idle_end, refresh_end),
        "probe_during_step": {name: prober.latency(s["start"], s["end"]) for name, s in steps.items()},
        "probe_after": prober.latency(refresh_end),
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
    server = start_server()
    row = {**measure(server, QUICK if args.quick else FULL, 8 if args.quick else 20), **stamp()}
    results_md.save({"collaborative": [row]}, quick=args.quick, server=server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
