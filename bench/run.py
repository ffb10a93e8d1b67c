"""Run the benchmarks and write bench/results.json and bench/RESULTS.md.

    python -m bench.run                          # 10k, 100k and 1M episodes at 384 dims, 100k at 1536
    python -m bench.run --quick                  # 10k only, few requests: under 3 minutes
    python -m bench.run --sizes 10000,100000     # some sizes (rows of other sizes are kept)
    python -m bench.run --no-collab              # without the collaborative refresh (bench/collab.py)

Built catalogs are cached under bench/.work/, so a re-run only measures. What the figures mean:
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from bench import catalog, collab, floor, ingest, load, recall, results_md, services, written_ahead
from bench.db import create_database, postgres_memory, scalar, start_server
from bench.fake_ai import FakeAI, delta
from bench.report import log, stamp
from bench.tables import WRITER_OFF

CHAT_DELAY_SECONDS = 0.3  # the simulated LLM call of the latency phases and of ingest
SLOW_CHAT_DELAY_SECONDS = 1.0  # a real model writing a page of reasons: the written-ahead phase
LIMIT = 10  # recommendations per request
EF_SEARCH_SWEEP = [10, 20, 40, 64, 100, 200, 400]


@dataclass(frozen=True)
class Plan:
    """How much each phase sends: users per cold phase, time limits in seconds."""

    concurrency: tuple[int, ...] = (4, 16)
    warm_concurrency: tuple[int, ...] = (1, 4, 16)  # 1 client: service time without queueing
    cold_users: int = 40  # per concurrent client and phase: every request a new user
    warm_users: int = 1024  # cycled: at 400 req/s each listener comes back 2.5 s after their last page
    warm_seconds: float = 15
    cold_seconds: float = 20
    baseline_users: int = 8  # per concurrent client
    baseline_seconds: float = 30
    floor_seconds: float = 10
    listeners: int = 16  # concurrent listeners of the written-ahead phase
    listening_seconds: float = 60
    recall_queries: int = 200
    ingest_single: int = 600
    ingest_bulk: int = 4000
    ingest_seconds: float = 30


FULL = Plan()
QUICK = Plan(
    cold_users=8,
    warm_users=256,
    warm_seconds=5,
    cold_seconds=8,
    baseline_users=3,
    baseline_seconds=12,
    floor_seconds=4,
    listeners=8,
    listening_seconds=20,
    recall_queries=50,
    ingest_single=150,
    ingest_bulk=1000,
    ingest_seconds=10,
)


def recommend_requests(users: Iterable[str], path: str = "/api/recommend_podcasts") -> Iterator[load.Request]:
    return (load.Request("GET", f"{path}?user_id={user}&limit={LIMIT}") for user in users)


def measure(
    base_url: str,
    ai: FakeAI,
    requests: Iterator[load.Request],
    concurrency: int,
    seconds: float,
    **row: Any,
) -> dict[str, Any]:
    """One load phase; LLM calls per request are counted over every request of the phase."""
    before = ai.counters()
    flag = "prepared" if row["system"] != "baseline" else None
    result = load.run(base_url, requests, concurrency, seconds, warmup=concurrency, flag=flag)
    calls = delta(before, ai.counters())["chat_requests"]
    answered = result.completed
    figures = result.summary()
    prepared = round(result.flagged / result.requests, 3) if flag and result.requests else None
    log(
        f"  {row['system']:8} {row.get('ab_split', ''):16} c={concurrency:<2} {row['cache']}:"
        f" p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, {figures['rps']} req/s"
        f" over {figures['requests']} requests, prepared {prepared}"
        + (f", errors {result.errors}" if result.errors else "")
    )
    return {
        **row,
        "concurrency": concurrency,
        **figures,
        "prepared_share": prepared,
        "llm_calls_per_request": round(calls / answered, 2) if answered else None,
        "errors": result.errors,
    }


def warm_phases(
    url: str, dsn: str, ai: FakeAI, warm: list[str], plan: Plan, **row: Any
) -> list[dict[str, Any]]:
    """Serve each user twice (the second time queues their next page), let the writer prepare
    the pages and write their reasons, then measure the listeners coming back."""
    load.run(url, recommend_requests(warm), 16, 120)
    load.run(url, recommend_requests(warm), 16, 120)  # returning listeners: their next page is prepared
    wait_for_writer(dsn)
    rows = []
    for c in plan.warm_concurrency:
        repeat = recommend_requests(itertools.cycle(warm))  # bounded by the phase's time limit
        rows.append(measure(url, ai, repeat, c, plan.warm_seconds, **row))
    return rows


def wait_for_writer(dsn: str, timeout: float = 300) -> None:
    """Until no page is queued or being prepared (the count of prepared pages holds still)."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        queued = scalar(dsn, "SELECT count(*) FROM pages_due")
        stored = scalar(dsn, "SELECT count(*) FROM prepared_pages")
        if queued == 0 and stored == last:
            return
        last = stored
        time.sleep(1)
    log(f"  the writer did not finish within {timeout} s")


class Users:
    """Disjoint slices of fresh listeners, so a cold phase never meets a user seen before."""

    def __init__(self, dsn: str, spec: catalog.Spec) -> None:
        self.dsn, self.spec, self.made = dsn, spec, 0

    def take(self, count: int) -> list[str]:
        ids = [f"u{self.made + n}" for n in range(count)]
        catalog.create_users(self.dsn, ids, catalog.user_vectors(self.spec, count, salt=self.made))
        self.made += count
        return ids


def bench_catalog(
    server: Any, ai: FakeAI, spec: catalog.Spec, plan: Plan, stamp: dict, with_recall: bool = True
) -> dict[str, list]:
    """Recall, ours (cold and warm) and the baseline on one catalog; returns rows by section."""
    info = catalog.build(server, spec)
    dsn = info["dsn"]
    base = {"catalog_size": spec.size, "dims": spec.dims, **stamp}
    recall_rows = []
    if with_recall:
        log(f"{spec.database}: recall over {plan.recall_queries} queries")
        queries = catalog.user_vectors(spec, plan.recall_queries, salt=999_999)  # not a users slice
        recall_rows = [{**r, **stamp} for r in recall.measure(dsn, queries, EF_SEARCH_SWEEP, info)]
    catalog.reset_users(dsn)
    users = Users(dsn, spec)
    rows = []
    ai.set("chat_delay_seconds", CHAT_DELAY_SECONDS)
    name = f"ours-{spec.size}-{spec.dims}"
    delay = {"llm_delay_ms": round(CHAT_DELAY_SECONDS * 1000)}
    ours = {"system": "ours", "ab_split": "default", **base, **delay}
    with services.ours(dsn, ai.base_url, spec.dims, name, RESUGGEST_WINDOW_HOURS="0") as url:
        for c in plan.concurrency:
            cold = recommend_requests(users.take(plan.cold_users * c))
            rows.append(measure(url, ai, cold, c, plan.cold_seconds, cache="cold", **ours))
        warm = users.take(plan.warm_users)
        rows += warm_phases(url, dsn, ai, warm, plan, cache="warm", **ours)
        memory = {
            **base,
            **postgres_memory(server),
            "table_mb": info["table_mb"],
            "index_mb": info["index_mb"],
        }
    # The warm phases leave pages queued (a writer behind a saturated service) and prepared. The
    # phases that follow start without them: the same warm requests without the page writer,
    # every page computed on the request as the floor computes its page, and the written-ahead
    # listeners, whose writer would otherwise spend its LLM calls on the warm listeners' backlog.
    queued = scalar(dsn, "WITH taken AS (DELETE FROM pages_due RETURNING 1) SELECT count(*) FROM taken")
    scalar(dsn, "WITH taken AS (DELETE FROM prepared_pages RETURNING 1) SELECT count(*) FROM taken")
    log(f"  warm phases done: {queued} pages were still queued")
    alone = {**ours, "system": WRITER_OFF}
    with services.ours(
        dsn, ai.base_url, spec.dims, f"{name}-alone", RESUGGEST_WINDOW_HOURS="0", PREPARE_PAGES="false"
    ) as url:
        repeat = recommend_requests(itertools.cycle(warm))
        rows.append(
            measure(url, ai, repeat, max(plan.warm_concurrency), plan.warm_seconds, cache="warm", **alone)
        )
    log(f"{spec.database}: the floor (the store's candidate query and insert alone)")
    floor_rows = []
    for c in plan.warm_concurrency:  # each warm phase's client count: shares at equal load
        row = {**base, **floor.measure(dsn, warm, c, plan.floor_seconds, LIMIT)}
        log(f"  floor c={c:<2}: p50 {row['p50_ms']} ms, {row['rps']} req/s")
        floor_rows.append(row)
    log(f"{spec.database}: written ahead, {plan.listeners} listeners, LLM {SLOW_CHAT_DELAY_SECONDS} s")
    ai.set("chat_delay_seconds", SLOW_CHAT_DELAY_SECONDS)
    with services.ours(dsn, ai.base_url, spec.dims, f"{name}-ahead") as url:
        row = written_ahead.measure(url, ai, users.take(plan.listeners), LIMIT, plan.listening_seconds)
    ahead = [{**base, "llm_delay_ms": round(SLOW_CHAT_DELAY_SECONDS * 1000), **row}]
    log(
        f"  p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, LLM reasons {row['llm_reason_share']},"
        f" {row['llm_calls_per_page']} LLM calls/page over {row['pages']} pages"
    )
    with services.baseline(dsn, ai.base_url, spec.dims, f"baseline-{spec.size}-{spec.dims}") as url:
        path = "/api/naive_recommend"
        slow = {"llm_delay_ms": round(SLOW_CHAT_DELAY_SECONDS * 1000)}
        naive = recommend_requests(users.take(plan.baseline_users), path)
        rows.append(
            measure(url, ai, naive, 1, plan.baseline_seconds, system="baseline", cache="cold", **base, **slow)
        )
        ai.set("chat_delay_seconds", CHAT_DELAY_SECONDS)
        for c in plan.concurrency:
            naive = recommend_requests(users.take(plan.baseline_users * c), path)
            rows.append(
                measure(
                    url, ai, naive, c, plan.baseline_seconds, system="baseline", cache="cold", **base, **delay
                )
            )
    return {
        "recommend": rows,
        "recall": recall_rows,
        "memory": [memory],
        "floor": floor_rows,
        "written_ahead": ahead,
    }


def bench_halfvec(server: Any, spec: catalog.Spec, plan: Plan, stamp: dict) -> dict[str, list]:
    """The same catalog stored as halfvec: its size and its recall against the exact answers of
    the full-precision catalog (what the index and the halved precision lose together)."""
    info = catalog.build(server, spec)
    full = catalog.build(server, catalog.Spec(spec.size, spec.dims))
    log(f"{spec.database}: recall over {plan.recall_queries} queries, exact answers from {full['dsn']}")
    queries = catalog.user_vectors(spec, plan.recall_queries, salt=999_999)
    rows = recall.measure(info["dsn"], queries, EF_SEARCH_SWEEP, info, truth_dsn=full["dsn"])
    base = {"catalog_size": spec.size, "dims": spec.dims, "storage": spec.storage, **stamp}
    return {
        "recall": [{**r, **stamp} for r in rows],
        "memory": [{**base, "table_mb": info["table_mb"], "index_mb": info["index_mb"]}],
    }


def bench_ingest(server: Any, ai: FakeAI, plan: Plan) -> list[dict[str, Any]]:
    """Ingest into a new, empty database, each LLM call (a batch of summaries) taking 300 ms."""
    dsn = create_database(server, "bench_ingest_384")
    ai.set("chat_delay_seconds", CHAT_DELAY_SECONDS)
    with services.ours(dsn, ai.base_url, 384, "ours-ingest") as url:
        rows = [
            ingest.single(url, ai, plan.ingest_single, 4, plan.ingest_seconds),
            ingest.bulk(url, ai, plan.ingest_bulk, 100, 4, plan.ingest_seconds),
        ]
    for row in rows:
        log(f"  ingest {row['path']}: {row['episodes_per_second']} episodes/s")
    return [{**row, **stamp(), "llm_delay_ms": round(CHAT_DELAY_SECONDS * 1000)} for row in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="catalog sizes at 384 dims")
    parser.add_argument("--dims-1536", default="100000", help="sizes also run at 1536 dims ('' for none)")
    parser.add_argument("--quick", action="store_true", help="10k only, few requests (under 3 minutes)")
    parser.add_argument("--no-ingest", action="store_true")
    parser.add_argument("--no-recall", action="store_true")
    parser.add_argument("--no-collab", action="store_true", help="skip the collaborative refresh phase")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    sizes = [10_000] if args.quick else [int(s) for s in args.sizes.split(",") if s]
    wide = [] if args.quick else [int(s) for s in args.dims_1536.split(",") if s]
    specs = [catalog.Spec(s, 384) for s in sizes] + [catalog.Spec(s, 1536) for s in wide if s in sizes]

    started = time.perf_counter()
    server = start_server()
    sections: dict[str, list] = {key: [] for key in results_md.KEYS}

    def save() -> None:  # after each phase: keep what is done so far
        results_md.save(sections, quick=args.quick, server=server)

    with FakeAI() as ai:
        for spec in specs:
            log(f"== {spec.size} episodes, {spec.dims} dims")
            for key, rows in bench_catalog(server, ai, spec, plan, stamp(), not args.no_recall).items():
                sections[key] += rows
            if spec.dims > 384:
                halved = catalog.Spec(spec.size, spec.dims, storage="halfvec")
                log(f"== {spec.size} episodes, {spec.dims} dims, stored as halfvec")
                for key, rows in bench_halfvec(server, halved, plan, stamp()).items():
                    sections[key] += rows
            save()
        if not args.no_collab:
            spec = collab.QUICK if args.quick else collab.FULL
            log(f"== collaborative refresh: {spec.episodes} episodes, {spec.events} events")
            sections["collaborative"] = [{**collab.measure(server, spec, 8 if args.quick else 20), **stamp()}]
            save()
        if not args.no_ingest:
            log("== ingest")
            sections["ingest"] = bench_ingest(server, ai, plan)
    save()
    log(f"done in {time.perf_counter() - started:.0f} s: bench/results.json, bench/RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
