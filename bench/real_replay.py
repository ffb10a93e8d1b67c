"""Real-data replay: how well the service recommends to real listeners (HetRec 2011 Last.fm).

    python -m bench.real_replay                    # make bench-real
    python -m bench.real_replay --data DIR --evaluated 200 --seeds 8 --seed 7

Every artist is an episode; a fixed-seed split (`bench/lastfm.py`) keeps `--evaluated` listeners
aside, each starting from `--seeds` of their artists and meant to find the rest. The others are
the background: their listens and a `like` of their 10 most played artists are loaded into one
database, served by `local_runner.py` (offline `local` provider) over real HTTP. Two copies of
that database (`CREATE DATABASE ... TEMPLATE`) each get a runner: in `with_feedback` the
evaluated listeners like the held-out artists they are shown and skip the rest, after each of
6 pages of 5; in `without_feedback` they say nothing. Offline baselines (`bench/real_baselines.py`)
replay the same protocol. The table goes to stdout, `bench/REAL_RESULTS.md` and the `"real"` key
of `bench/results.json`; only aggregate figures, nothing of the data set, is written.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2

from bench import charts, lastfm
from bench.real_baselines import FINAL_SIZE, PAGE_SIZE, PAGES, Figures, Trace, baselines, figures
from bench.report import code_version, machine
from bench.simulate_loop import checked, log
from tests.conftest import Api, fresh_database, run_api

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work"
RESULTS_JSON = ROOT / "bench" / "results.json"
RESULTS_MD = ROOT / "bench" / "REAL_RESULTS.md"
ENV = {"AI_PROVIDER": "local", "AB_SPLIT": "loop:100", "COLLAB_REFRESH_SECONDS": "0"}
ARMS = {"with_feedback": True, "without_feedback": False}  # arm -> whether listeners give feedback
CATALOGUE_BATCH = 500  # the service's MAX_BULK_ITEMS
EVENTS_BATCH = 1000  # the most events one POST /api/feedback takes
BACKGROUND_LIKES = 10  # likes per background listener: their most played artists
TARGET = 1.10  # with feedback vs the best baseline, and vs without feedback


@dataclass(frozen=True)
class Options:
    data: Path
    evaluated: int
    seeds: int
    seed: int
    threads: int
    collab_timeout: float


@dataclass(frozen=True)
class Played:
    """One evaluated listener's replay."""

    trace: Trace
    latencies_ms: list[float]  # each recommend request
    strategies: list[tuple[str, bool]]  # each page item: the service's strategy, and whether a hit


@dataclass(frozen=True)
class Arm:
    traces: dict[str, Trace]
    latencies_ms: list[float]  # every recommend request of the replay
    strategies: Counter[tuple[str, bool]]  # page items by (strategy, hit)


@dataclass(frozen=True)
class Import:
    events: int
    seconds: float


@dataclass(frozen=True)
class Outcome:
    systems: dict[str, Figures]
    latency_ms: dict[str, dict[str, float]]  # arm -> p50, p95, requests
    imported: Import
    strategies: dict[str, dict[str, dict[str, float]]]  # arm -> strategy -> items, hit_rate
    collaborative: dict[str, Any] | None  # the model's state after the background import
    catalogue_size: int
    background_users: int


@contextmanager
def embedded_postgres() -> Iterator[Any]:
    """The embedded Postgres under bench/.work/real-pg18, stopped on exit; yields the pgserver."""
    import pgserver

    WORK.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(WORK / "real-pg18", cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()


def read_vectors(dsn: str, external_ids: list[str]) -> np.ndarray:
    """The episodes' embeddings as the service stored them, in `external_ids` order."""
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT external_id, embedding::real[] FROM podcasts")
        vectors = dict(cur.fetchall())
    conn.close()
    return np.vstack([vectors[e] for e in external_ids]).astype(np.float32)


def load_catalogue(api: Api, artists: list[lastfm.Artist]) -> dict[str, int]:
    """Every artist as an episode through `POST /api/add_podcasts`; returns podcast ids."""
    ids = {}
    for start in range(0, len(artists), CATALOGUE_BATCH):
        batch = artists[start : start + CATALOGUE_BATCH]
        items = [
            {
                "external_id": a.external_id,
                "title": a.title,
                "transcript": a.transcript(),
                "category": "music",
            }
            for a in batch
        ]
        results = checked(api.post("/api/add_podcasts", items), 200)["results"]
        for artist, result in zip(batch, results, strict=True):
            if result.get("status") != "ready":
                raise RuntimeError(f"{artist.external_id}: {result}")
            ids[artist.external_id] = result["id"]
        log(f"catalogue: {start + len(batch)} of {len(artists)} episodes")
    return ids


def post_events(api: Api, events: list[dict[str, Any]]) -> None:
    """Through the bulk `POST /api/feedback`, EVENTS_BATCH events per request."""
    for start in range(0, len(events), EVENTS_BATCH):
        results = checked(api.post("/api/feedback", events[start : start + EVENTS_BATCH]), 200)["results"]
        errors = [r for r in results if "error" in r]
        if errors:
            raise RuntimeError(f"{len(errors)} feedback events refused, e.g. {errors[0]}")


def load_background(api: Api, background: dict[str, list[str]], ids: dict[str, int], threads: int) -> Import:
    """Each background listener's listens, then a like of each one's most played artists."""

    def create(user: str) -> None:
        body = {"user_id": user, "listened_podcast_ids": [ids[a] for a in background[user]]}
        checked(api.post("/api/update_user_history", body), 200)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, background))
    log(f"background: {len(background)} listeners created")
    events = [
        {"user_id": user, "podcast_id": ids[a], "event": "like", "event_id": f"real-bg-{user}-{a}"}
        for user, artists in background.items()
        for a in artists[:BACKGROUND_LIKES]
    ]
    started = time.monotonic()
    post_events(api, events)
    imported = Import(len(events), time.monotonic() - started)
    log(f"background: {imported.events} likes in {imported.seconds:.1f} s")
    return imported


def wait_for_collaborative(api: Api, timeout: float) -> dict[str, Any] | None:
    """Until the collaborative model has seen every event; None if the service has none."""
    deadline = time.monotonic() + timeout
    while True:
        state = checked(api.get("/api/health"), 200).get("collaborative")
        if state is None:
            log("health has no 'collaborative' key: not waiting for a collaborative model")
            return None
        if state.get("refreshed_at") is not None and state.get("events_since_refresh") == 0:
            log(f"collaborative model ready: {state}")
            return state
        if time.monotonic() > deadline:
            raise RuntimeError(f"collaborative model not refreshed after {timeout:g} s: {state}")
        time.sleep(1)


def recommend(api: Api, user: str, limit: int, latencies: list[float]) -> list[dict[str, Any]]:
    started = time.perf_counter()
    body = checked(api.get("/api/recommend_podcasts", params={"user_id": user, "limit": limit}), 200)
    latencies.append((time.perf_counter() - started) * 1000)
    if body["variant"] != "loop":
        raise RuntimeError(f"{user} was served by {body['variant']!r}, not 'loop'")
    return body["recommendations"]


def play(
    api: Api, user: str, split: lastfm.Split, ids: dict[str, int], external: dict[int, str], feedback: bool
) -> Played:
    """One evaluated listener: created from their seeds, PAGES pages (each followed by feedback
    when `feedback`), then one list of FINAL_SIZE. `external`: podcast id -> artist."""
    wanted = split.held_out[user]
    body = {"user_id": user, "listened_podcast_ids": [ids[a] for a in split.seeds[user]]}
    checked(api.post("/api/update_user_history", body), 200)
    latencies: list[float] = []
    pages, strategies = [], []
    for number in range(1, PAGES + 1):
        items = recommend(api, user, PAGE_SIZE, latencies)
        pages.append([external[i["podcast_id"]] for i in items])
        strategies += [(i["strategy"], external[i["podcast_id"]] in wanted) for i in items]
        if feedback:
            events = [
                {
                    "user_id": user,
                    "podcast_id": i["podcast_id"],
                    "suggestion_id": i["suggestion_id"],
                    "event": "like" if external[i["podcast_id"]] in wanted else "skip",
                    "event_id": f"real-{user}-{number}-{i['podcast_id']}",
                }
                for i in items
            ]
            post_events(api, events)
    final = [external[i["podcast_id"]] for i in recommend(api, user, FINAL_SIZE, latencies)]
    return Played(Trace(pages, final), latencies, strategies)


def run_arm(api: Api, name: str, split: lastfm.Split, ids: dict[str, int], options: Options) -> Arm:
    """Every evaluated listener, `options.threads` at a time."""
    wait_for_collaborative(api, options.collab_timeout)
    users = list(split.seeds)
    external = {podcast_id: artist for artist, podcast_id in ids.items()}
    arm = Arm({}, [], Counter())

    def one(user: str) -> Played:
        return play(api, user, split, ids, external, ARMS[name])

    with ThreadPoolExecutor(options.threads) as pool:
        for done, (user, played) in enumerate(zip(users, pool.map(one, users), strict=True), start=1):
            arm.traces[user] = played.trace
            arm.latencies_ms.extend(played.latencies_ms)
            arm.strategies.update(played.strategies)
            if done % 50 == 0 or done == len(users):
                log(f"{name}: {done} of {len(users)} listeners")
    return arm


def latency(arm: Arm) -> dict[str, float]:
    """p50 and p95 in ms of the arm's recommend requests."""
    p50, p95 = np.percentile(arm.latencies_ms, [50, 95])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1), "requests": len(arm.latencies_ms)}


def by_strategy(arm: Arm) -> dict[str, dict[str, float]]:
    """Page items per strategy the service gave, and the share of them that were hits."""
    out = {}
    for strategy in sorted({s for s, _ in arm.strategies}):
        hits, misses = arm.strategies[(strategy, True)], arm.strategies[(strategy, False)]
        out[strategy] = {"items": hits + misses, "hit_rate": round(hits / (hits + misses), 3)}
    return out


def ratios(outcome: Outcome) -> dict[str, Any]:
    """The figures the targets are judged by: mean precision@5 over pages 2-6."""
    later = {name: f.later_precision for name, f in outcome.systems.items()}
    best = max((n for n in later if not n.startswith("service")), key=later.get)
    with_feedback = later["service, with feedback"]
    return {
        "best_baseline": best,
        "vs_best_baseline": round(with_feedback / later[best], 3),
        "with_vs_without_feedback": round(with_feedback / later["service, without feedback"], 3),
    }


def table(outcome: Outcome) -> str:
    lines = [
        "| system | "
        + " | ".join(f"p@5 page {n}" for n in range(1, PAGES + 1))
        + f" | **mean p@5 pages 2-{PAGES}** | recall@{FINAL_SIZE} | coverage |",
        "|---|" + "---:|" * (PAGES + 3),
    ]
    for name, f in outcome.systems.items():
        pages = " | ".join(f"{p:.3f}" for p in f.precision)
        lines.append(
            f"| {name} | {pages} | **{f.later_precision:.3f}** | {f.recall:.3f} | {f.coverage:.3f} |"
        )
    return "\n".join(lines)


def verdicts(outcome: Outcome) -> list[str]:
    r = ratios(outcome)
    met = {True: "met", False: "**missed**"}
    return [
        f"- Service with feedback / best baseline ({r['best_baseline']}): {r['vs_best_baseline']:.3f}"
        f" (target >= {TARGET:.2f}: {met[r['vs_best_baseline'] >= TARGET]})",
        f"- Service with / without feedback: {r['with_vs_without_feedback']:.3f}"
        f" (target >= {TARGET:.2f}: {met[r['with_vs_without_feedback'] >= TARGET]})",
    ]


def summary(outcome: Outcome) -> str:
    """The table, the targets, latency and import rate: what stdout and the report share."""
    latency = "; ".join(
        f"{arm} p50 {v['p50']} ms, p95 {v['p95']} ms ({v['requests']} requests)"
        for arm, v in outcome.latency_ms.items()
    )
    rate = outcome.imported.events / outcome.imported.seconds
    strategies = [
        f"- Page items by the service's strategy, {arm}: "
        + ", ".join(f"{s} {v['items']} ({v['hit_rate']:.1%} hits)" for s, v in by.items())
        for arm, by in outcome.strategies.items()
    ]
    return "\n".join(
        [
            table(outcome),
            "",
            *verdicts(outcome),
            f"- Recommend latency over the replay's requests: {latency}. Under the replay's own"
            " load (4 listeners, their feedback, model rebuilds) on a machine shared with whatever"
            " else runs; the speed figures of record are in `bench/RESULTS.md`.",
            f"- Feedback import: {outcome.imported.events} likes in {outcome.imported.seconds:.1f} s"
            f" ({rate:.0f} events/s)",
            *strategies,
        ]
    )


def save_json(outcome: Outcome, options: Options, command: str, seconds: float) -> None:
    """Replace only the "real" key of bench/results.json; other scripts own the other keys."""
    r = ratios(outcome)
    figures_json = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": code_version(),
        "command": command,
        "data_set": "HetRec 2011 Last.fm (hetrec2011-lastfm-2k)",
        "catalogue_size": outcome.catalogue_size,
        "background_users": outcome.background_users,
        "evaluated_users": options.evaluated,
        "seeds_per_user": options.seeds,
        "seed": options.seed,
        "pages": PAGES,
        "page_size": PAGE_SIZE,
        "final_size": FINAL_SIZE,
        "systems": {
            name: {
                "precision_at_5": [round(p, 4) for p in f.precision],
                "mean_precision_at_5_pages_2_6": round(f.later_precision, 4),
                "recall_at_20": round(f.recall, 4),
                "coverage": round(f.coverage, 4),
            }
            for name, f in outcome.systems.items()
        },
        **r,
        "targets": {
            "vs_best_baseline": {"target": TARGET, "met": r["vs_best_baseline"] >= TARGET},
            "with_vs_without_feedback": {"target": TARGET, "met": r["with_vs_without_feedback"] >= TARGET},
        },
        "recommend_latency_ms": outcome.latency_ms,
        "page_items_by_strategy": outcome.strategies,
        "feedback_import": {
            "events": outcome.imported.events,
            "seconds": round(outcome.imported.seconds, 2),
            "events_per_second": round(outcome.imported.events / outcome.imported.seconds, 1),
        },
        "collaborative_after_import": outcome.collaborative,
        "seconds": round(seconds),
    }
    existing = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    RESULTS_JSON.write_text(json.dumps({**existing, "real": figures_json}, indent=2) + "\n")


def save_markdown(outcome: Outcome, options: Options, command: str, seconds: float, host: dict) -> None:
    RESULTS_MD.write_text(
        f"""# Real-data replay (HetRec 2011 Last.fm)

Written by `bench/real_replay.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {seconds:.0f} s, code
`{code_version()}`. Machine: {host["cpu"]}, {host["cores"]} cores, {host["memory_gib"]} GiB RAM;
Python {host["python"]}; embedded PostgreSQL {host["postgres"]}, pgvector {host["pgvector"]}.

Command: `{command}` (`make bench-real` runs it with the defaults).

## Protocol

- **Catalogue**: each of the {outcome.catalogue_size} artists is an episode (title: the artist's
  name; transcript: their {lastfm.TAGS_PER_ARTIST} most used tags), posted through
  `POST /api/add_podcasts` and embedded by the offline `local` provider (all-MiniLM-L6-v2).
- **Split** (`bench/lastfm.py`, seed {options.seed}): {options.evaluated} evaluated listeners with
  at least 20 artists start from {options.seeds} random artists of theirs (sent as listens with
  `update_user_history`); the rest of their artists are held out. The other
  {outcome.background_users} listeners are the background: all their artists as listens, and a
  `like` of each one's {BACKGROUND_LIKES} most played artists through the bulk `POST /api/feedback`.
- **Arms**: everything is loaded once into one database (runner with `COLLAB_REFRESH_SECONDS=0`,
  waited on until `GET /api/health` says the collaborative model has seen every event); two copies
  (`CREATE DATABASE ... TEMPLATE`) each get a `local_runner.py` with `AB_SPLIT=loop:100`.
- **Replay**: each evaluated listener asks for {PAGES} pages of {PAGE_SIZE}
  (`GET /api/recommend_podcasts`), then one list of {FINAL_SIZE}. In `with feedback`, after each
  page every item gets `like` (held out) or `skip` (not), with its `suggestion_id`, as one bulk
  request; `without feedback` posts nothing. {options.threads} listeners at a time.
- **Metrics**: precision@{PAGE_SIZE} of a page = held-out artists on it / {PAGE_SIZE};
  recall@{FINAL_SIZE} = held-out artists in the final list not shown before / min({FINAL_SIZE},
  held-out artists not shown yet) (listeners with none left are not counted); coverage = distinct
  episodes on all pages of all listeners / catalogue size. The targets are judged on mean
  precision@{PAGE_SIZE} over pages 2-{PAGES}, i.e. after feedback could act.
- **Baselines** (`bench/real_baselines.py`), offline on the same split and the same pages and
  feedback rule (hits join the positives, misses the negatives; nothing is shown twice): random;
  popularity (background listeners per artist); item-kNN (cosine between artists' binary
  background listener sets, top 100 neighbours per artist, score = sum of similarities to the
  positives); content (cosine to the mean of the positives' vectors, read from the service's
  database). "no feedback" rows rank from the seeds alone.

## Results

{summary(outcome)}

![Precision@{PAGE_SIZE} per page for each method](charts/precision_at_5.png)

## Data licence

The HetRec 2011 Last.fm data set (GroupLens / Last.fm, http://ir.ii.uam.es/hetrec2011) is for
non-commercial research use. It is read from `--data` (default `../shared/data/hetrec2011-lastfm-2k`)
and never copied into this repository; this file and `results.json` hold aggregate figures only.
"""
    )


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=lastfm.DEFAULT_DIR, help="the hetrec2011-lastfm-2k folder"
    )
    parser.add_argument("--evaluated", type=int, default=200, help="listeners evaluated")
    parser.add_argument("--seeds", type=int, default=8, help="artists each evaluated listener starts from")
    parser.add_argument("--seed", type=int, default=7, help="seed of the split")
    parser.add_argument("--threads", type=int, default=4, help="listeners replayed at once")
    parser.add_argument(
        "--collab-timeout", type=float, default=300, help="seconds to wait for the collaborative model"
    )
    args = parser.parse_args(argv)
    return Options(args.data, args.evaluated, args.seeds, args.seed, args.threads, args.collab_timeout)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    command = shlex.join(["python", "-m", "bench.real_replay", *(sys.argv[1:] if argv is None else argv)])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop runners and Postgres as on Ctrl+C
    started = time.monotonic()
    artists = lastfm.load_artists(options.data)
    split = lastfm.split(lastfm.load_listening(options.data), options.evaluated, options.seeds, options.seed)
    external_ids = [a.external_id for a in artists]
    log(f"{len(artists)} artists; {len(split.background)} background, {len(split.seeds)} evaluated listeners")
    logs = WORK / "real-logs"
    logs.mkdir(parents=True, exist_ok=True)
    with embedded_postgres() as server:
        admin = server.get_uri()
        base = fresh_database(admin, "real_base")
        with run_api(base, ENV, logs / "base.log") as api:
            ids = load_catalogue(api, artists)
            imported = load_background(api, split.background, ids, options.threads)
            collaborative = wait_for_collaborative(api, options.collab_timeout)
        vectors = read_vectors(base, external_ids)
        dsns = {arm: fresh_database(admin, f"real_{arm}", template="real_base") for arm in ARMS}
        arms = {}
        for arm, dsn in dsns.items():
            with run_api(dsn, ENV, logs / f"{arm}.log") as api:
                arms[arm] = run_arm(api, arm, split, ids, options)
        host = machine(server)
    log("offline baselines")
    systems = {
        f"service, {arm.replace('_', ' ')}": figures(result.traces, split.held_out, len(artists))
        for arm, result in arms.items()
    }
    systems |= baselines(split, external_ids, vectors, options.seed)
    outcome = Outcome(
        systems=systems,
        latency_ms={arm: latency(result) for arm, result in arms.items()},
        imported=imported,
        strategies={arm: by_strategy(result) for arm, result in arms.items()},
        collaborative=collaborative,
        catalogue_size=len(artists),
        background_users=len(split.background),
    )
    seconds = time.monotonic() - started
    print()
    print(summary(outcome))
    save_json(outcome, options, command, seconds)
    save_markdown(outcome, options, command, seconds, host)
    charts.precision_chart(json.loads(RESULTS_JSON.read_text()), charts.PRECISION_PNG)
    print(
        f"\n{seconds:.0f} s; wrote {RESULTS_MD.relative_to(ROOT)} and the 'real' key of {RESULTS_JSON.name}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
