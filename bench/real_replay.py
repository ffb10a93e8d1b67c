"""Real-data replay: how well the service recommends to real listeners, on HetRec 2011 Last.fm
(listening) and on explicit ratings (FilmTrust by default).

    python -m bench.real_replay                           # make bench-real DATA_SET=lastfm
    python -m bench.real_replay --data-set filmtrust      # make bench-real DATA_SET=filmtrust
    python -m bench.real_replay --data DIR --evaluated 200 --seeds 8 --seed 7 --more-seeds 11 13

Every item is an episode, posted once into one catalogue database. For each split seed
(`--seed`, then `--more-seeds`; `bench/datasets.py`) `--evaluated` listeners are kept aside, each
starting from `--seeds` of their items and meant to find the rest. The others are the
background: their listens and what they liked (Last.fm: a `like` of their 10 most played
artists; ratings: every rating as a `rate` event) are loaded into a copy of the catalogue,
served by `local_runner.py` (offline `local` provider) over real HTTP. Copies of that database
(`CREATE DATABASE ... TEMPLATE`) each get a runner: in `with_feedback` the evaluated listeners
like the hits they are shown, dislike the held-out items they rated low and skip the rest, after
each of 6 pages of 5; `with_feedback_no_exploration` is the same with `EXPLORATION_SHARE=0` (what
exploration costs and buys); in `without_feedback` they say nothing. Offline baselines
(`bench/real_baselines.py`) replay the same protocol, with the field's strong simple ones
(`bench/strong_baselines.py`: EASE, RP3beta, iALS, tuned item-kNN, each tuned on validation
listeners drawn from the background). The figures go to stdout, `bench/REAL_RESULTS.md` and the
data set's entry of the `"real"` key of `bench/results.json`; only aggregate figures, nothing of
the data set, is written.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg2

import db_utils
from bench import charts, real_md, services, strong_baselines
from bench.datasets import DataSet, Item, Split
from bench.db import WORK_DIR, create_database, start_server
from bench.real_baselines import FINAL_SIZE, PAGE_SIZE, PAGES, Trace, baselines, figures
from bench.report import code_version, log, machine, update_results
from bench.sources import DATA_SETS
from recommender import store

ENV = {"AB_SPLIT": "loop:100", "COLLAB_REFRESH_SECONDS": "0"}  # on the `local` provider
# arm -> (whether listeners give feedback, the runner's settings beyond ENV)
ARMS: dict[str, tuple[bool, dict[str, str]]] = {
    "with_feedback": (True, {}),
    "without_feedback": (False, {}),
    "with_feedback_no_exploration": (True, {"EXPLORATION_SHARE": "0"}),
}
CATALOGUE_BATCH = 500  # the service's MAX_BULK_ITEMS
EVENTS_BATCH = 1000  # the most events one POST /api/feedback takes


def checked(response: httpx.Response, *ok: int) -> Any:
    """The JSON body of an answer with one of the `ok` statuses; anything else raises."""
    if response.status_code not in ok:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
        )
    return response.json()


@contextmanager
def service(dsn: str, name: str, **env: str) -> Iterator[httpx.Client]:
    with services.local(dsn, name, **ENV, **env) as url, httpx.Client(base_url=url, timeout=60) as api:
        yield api


def load_catalogue(api: httpx.Client, items: list[Item], category: str) -> dict[str, int]:
    """Every item as an episode through `POST /api/add_podcasts`; returns podcast ids."""
    ids = {}
    for start in range(0, len(items), CATALOGUE_BATCH):
        batch = items[start : start + CATALOGUE_BATCH]
        body = [
            {
                "external_id": i.external_id,
                "title": i.title,
                "transcript": i.transcript(),
                "category": category,
            }
            for i in batch
        ]
        results = checked(api.post("/api/add_podcasts", json=body), 200)["results"]
        for item, result in zip(batch, results, strict=True):
            if result.get("status") != "ready":
                raise RuntimeError(f"{item.external_id}: {result}")
            ids[item.external_id] = result["id"]
        log(f"catalogue: {start + len(batch)} of {len(items)} episodes")
    return ids


def post_events(api: httpx.Client, events: list[dict[str, Any]]) -> None:
    """Through the bulk `POST /api/feedback`, EVENTS_BATCH events per request."""
    for start in range(0, len(events), EVENTS_BATCH):
        body = events[start : start + EVENTS_BATCH]
        errors = [r for r in checked(api.post("/api/feedback", json=body), 200)["results"] if "error" in r]
        if errors:
            raise RuntimeError(f"{len(errors)} feedback events refused, e.g. {errors[0]}")


def load_background(
    api: httpx.Client, data: DataSet, split: Split, ids: dict[str, int], threads: int
) -> dict:
    """Each background listener's listens, then what they said of them (likes or ratings)."""

    def create(user: str) -> None:
        body = {"user_id": user, "listened_podcast_ids": [ids[i] for i in split.background[user]]}
        checked(api.post("/api/update_user_history", json=body), 200)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, split.background))
    log(f"background: {len(split.background)} listeners created")
    events = [e for user, items in split.background.items() for e in data.events(user, items, ids)]
    started = time.monotonic()
    post_events(api, events)
    seconds = time.monotonic() - started
    log(f"background: {len(events)} events in {seconds:.1f} s")
    return {
        "events": len(events),
        "seconds": round(seconds, 2),
        "events_per_second": round(len(events) / seconds, 1),
    }


def wait_for_collaborative(api: httpx.Client, timeout: float) -> dict[str, Any] | None:
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


def wait_for_training(api: httpx.Client, timeout: float) -> dict[str, Any]:
    """Until the first training of the ranker and the blend (`GET /api/health`'s `ranker`), so that
    every arm starts from the same one; at most `timeout` s (a training may fit nothing: then the
    arms start without one)."""
    deadline = time.monotonic() + timeout
    while (state := checked(api.get("/api/health"), 200).get("ranker") or {}).get("version") is None:
        if time.monotonic() > deadline:
            log(f"no ranker trained after {timeout:g} s: the arms start without one ({state})")
            return state
        time.sleep(1)
    log(f"ranker and blend trained: ranks {state.get('ranks')}, blend {state.get('blend')}")
    return state


def play(
    api: httpx.Client,
    user: str,
    data: DataSet,
    split: Split,
    ids: dict[str, int],
    artist: dict[int, str],
    feedback: bool,
) -> dict:
    """One evaluated listener: created from their seeds (and their ratings of them, where the data
    set has ratings), PAGES pages (each followed by feedback when `feedback`), then one list of
    FINAL_SIZE; with the latency of each request and the service's strategy of each page item,
    with whether it was a hit. `artist`: podcast id -> item."""
    wanted = split.held_out[user]
    body = {"user_id": user, "listened_podcast_ids": [ids[a] for a in split.seeds[user]]}
    checked(api.post("/api/update_user_history", json=body), 200)
    if data.ratings is not None:
        post_events(api, data.events(user, split.seeds[user], ids))
    played: dict[str, Any] = {"latencies": [], "strategies": [], "pages": []}

    def recommend(limit: int) -> list[dict[str, Any]]:
        started = time.perf_counter()
        body = checked(api.get("/api/recommend_podcasts", params={"user_id": user, "limit": limit}), 200)
        played["latencies"].append((time.perf_counter() - started) * 1000)
        if body["variant"] != "loop":
            raise RuntimeError(f"{user} was served by {body['variant']!r}, not 'loop'")
        return body["recommendations"]

    for number in range(1, PAGES + 1):
        items = recommend(PAGE_SIZE)
        played["pages"].append([artist[i["podcast_id"]] for i in items])
        played["strategies"] += [(i["strategy"], artist[i["podcast_id"]] in wanted) for i in items]
        if feedback:
            events = [
                {
                    "user_id": user,
                    "podcast_id": i["podcast_id"],
                    "suggestion_id": i["suggestion_id"],
                    "event": split.reaction(user, artist[i["podcast_id"]]),
                    "event_id": f"real-{user}-{number}-{i['podcast_id']}",
                }
                for i in items
            ]
            post_events(api, events)
    played["trace"] = Trace(played.pop("pages"), [artist[i["podcast_id"]] for i in recommend(FINAL_SIZE)])
    return played


def run_arm(
    api: httpx.Client, name: str, data: DataSet, split: Split, ids: dict[str, int], args: Any
) -> dict:
    """Every evaluated listener, `args.threads` at a time: their traces, the latency of every
    recommend request, and page items by (strategy, hit)."""
    wait_for_collaborative(api, args.collab_timeout)
    users, artist = list(split.seeds), {podcast_id: a for a, podcast_id in ids.items()}
    arm: dict[str, Any] = {"traces": {}, "latencies": [], "strategies": Counter()}
    with ThreadPoolExecutor(args.threads) as pool:
        plays = pool.map(lambda user: play(api, user, data, split, ids, artist, ARMS[name][0]), users)
        for done, (user, played) in enumerate(zip(users, plays, strict=True), start=1):
            arm["traces"][user] = played["trace"]
            arm["latencies"] += played["latencies"]
            arm["strategies"].update(played["strategies"])
            if done % 50 == 0 or done == len(users):
                log(f"{name}: {done} of {len(users)} listeners")
    return arm


def by_strategy(strategies: Counter[tuple[str, bool]]) -> dict[str, dict[str, float]]:
    """Page items per strategy the service gave, and the share of them that were hits."""
    out = {}
    for strategy in sorted({s for s, _ in strategies}):
        hits, misses = strategies[(strategy, True)], strategies[(strategy, False)]
        out[strategy] = {"items": hits + misses, "hit_rate": round(hits / (hits + misses), 3)}
    return out


def replay(args: Any) -> dict[str, Any]:
    """The whole replay of one data set; returns the figures as results.json keeps them under
    "real" and its name: those of the first split seed at the top, each other seed's under
    "other_seeds"."""
    data = DATA_SETS[args.data_set].load(args.data)
    server = start_server(WORK_DIR / "real-pg18")
    catalogue = create_database(server, f"real_catalogue_{data.name}")
    with service(catalogue, "real-catalogue") as api:
        ids = load_catalogue(api, data.items, data.category)
    external_ids = [i.external_id for i in data.items]
    conn = psycopg2.connect(catalogue)
    db_utils.register_vector_types(conn)
    with conn:
        stored = store.podcasts.vectors(conn, [ids[e] for e in external_ids])
    conn.close()
    vectors = np.vstack([stored[ids[e]] for e in external_ids]).astype(np.float32)
    runs = {}
    for seed in [args.seed, *args.more_seeds]:
        split = data.split(args.evaluated, args.seeds, seed)
        log(f"split seed {seed}: {len(split.background)} background, {len(split.seeds)} evaluated listeners")
        runs[seed] = replay_seed(server, data, split, ids, external_ids, vectors, seed, args)
    first = runs.pop(args.seed)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": code_version(),
        "data_set_name": data.name,
        "data_set": data.title,
        "catalogue_size": len(data.items),
        "background_users": len(first["split"].background),
        "evaluated_users": args.evaluated,
        "seeds_per_user": args.seeds,
        "seed": args.seed,
        "threads": args.threads,
        "liked": data.liked_rule,
        "pages": PAGES,
        "page_size": PAGE_SIZE,
        "final_size": FINAL_SIZE,
        **{k: v for k, v in first.items() if k != "split"},
        "validation_users": strong_baselines.VALIDATION,
        "ease_items": strong_baselines.EASE_ITEMS,
        "like_weight": strong_baselines.LIKE_WEIGHT,
        "other_seeds": {
            str(seed): {k: v for k, v in run.items() if k != "split"} for seed, run in runs.items()
        },
        "across_seeds": real_md.across_seeds([first, *runs.values()]),
        "machine": machine(server),
    }


def replay_seed(
    server: Any,
    data: DataSet,
    split: Split,
    ids: dict[str, int],
    external_ids: list[str],
    vectors: np.ndarray,
    seed: int,
    args: Any,
) -> dict[str, Any]:
    """One split seed: its background loaded into a copy of the catalogue, the service's arms each
    on a copy of that, and the offline baselines, tuned on this split's validation listeners."""
    base_name = f"real_base_{data.name}_{seed}"
    base = create_database(server, base_name, template=f"real_catalogue_{data.name}")
    with service(base, f"real-base-{seed}") as api:
        imported = load_background(api, data, split, ids, args.threads)
        collaborative = wait_for_collaborative(api, args.collab_timeout)
        trained = wait_for_training(api, args.collab_timeout)
    arms = {}
    for name, (_, env) in ARMS.items():
        copy = create_database(server, f"real_{name}", template=base_name)
        with service(copy, f"real-{name}", **env) as api:
            arms[name] = run_arm(api, name, data, split, ids, args)
            arms[name]["ranker"] = checked(api.get("/api/health"), 200).get("ranker")
    log(f"offline baselines, split seed {seed}")
    systems = {
        f"service, {name.replace('_', ' ')}": figures(arm["traces"], split.held_out, len(external_ids))
        for name, arm in arms.items()
    }
    systems |= baselines(split, external_ids, vectors, seed)
    strong, tuning = strong_baselines.strong_baselines(data, split, external_ids, args.seeds, seed, log)
    systems |= strong
    latency = {name: np.percentile(arm["latencies"], [50, 95]) for name, arm in arms.items()}
    judged = real_md.ratios(systems)
    for figures_of_system in systems.values():
        del figures_of_system["per_listener"]  # the paired interval is kept, not every listener
    return {
        "split": split,
        "systems": systems,
        **judged,
        "exploration": real_md.exploration(systems),
        "tuning": tuning,
        "ranker_at_start": trained,
        "ranker": {name: arm["ranker"] for name, arm in arms.items()},
        "recommend_latency_ms": {
            name: {
                "p50": round(float(p50), 1),
                "p95": round(float(p95), 1),
                "requests": len(arms[name]["latencies"]),
            }
            for name, (p50, p95) in latency.items()
        },
        "page_items_by_strategy": {name: by_strategy(arm["strategies"]) for name, arm in arms.items()},
        "feedback_import": imported,
        "collaborative_after_import": collaborative,
    }


def rounded(systems: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: {k: np.round(v, 4).tolist() for k, v in f.items()} for name, f in systems.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-set", choices=sorted(DATA_SETS), default="lastfm", help="which data set")
    parser.add_argument("--data", type=Path, help="its folder or ratings file (default: ../shared/data/...)")
    parser.add_argument("--evaluated", type=int, help="listeners evaluated (lastfm 200, filmtrust 60)")
    parser.add_argument("--seeds", type=int, default=8, help="items each evaluated listener starts from")
    parser.add_argument("--seed", type=int, default=7, help="seed of the split")
    parser.add_argument("--more-seeds", type=int, nargs="*", default=[11, 13], help="more split seeds")
    parser.add_argument("--threads", type=int, default=4, help="listeners replayed at once")
    parser.add_argument("--collab-timeout", type=float, default=300, help="seconds to wait for the model")
    args = parser.parse_args(argv)
    source = DATA_SETS[args.data_set]
    args.data = args.data or source.path
    if args.data is None:
        parser.error(f"--data-set {args.data_set} needs --data")
    args.evaluated = args.evaluated or source.evaluated
    command = shlex.join(["python", "-m", "bench.real_replay", *(sys.argv[1:] if argv is None else argv)])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop runners and Postgres as on Ctrl+C
    started = time.monotonic()
    real = {**replay(args), "command": command, "seconds": round(time.monotonic() - started)}
    print("\n" + real_md.every_seed(real))
    others = {seed: {**run, "systems": rounded(run["systems"])} for seed, run in real["other_seeds"].items()}
    stored = {**real, "systems": rounded(real["systems"]), "other_seeds": others}

    def keep(results: dict[str, Any]) -> None:
        by_set = results.get("real", {})
        if "systems" in by_set:  # written before there was more than one data set: Last.fm's
            by_set = {"lastfm": by_set | {"data_set_name": "lastfm"}}
        results["real"] = by_set | {args.data_set: stored}

    results = update_results(keep)
    real_md.RESULTS_MD.write_text(real_md.render(results["real"]))
    charts.precision_chart(stored)
    print(f"\n{real['seconds']} s; wrote bench/REAL_RESULTS.md and the 'real' key of bench/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
