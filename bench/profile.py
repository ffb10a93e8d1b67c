"""Where a recommend request spends its time: cProfile around `recommender.recommend`, in-process,
on a built catalog, with the fake AI server answering at once.

    python -m bench.profile --size 100000 --requests 300
    python -m bench.profile --ingest 500          # recommender.add_podcasts on a new database

Prints the mean time per request (or episode) and the functions with the most cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from typing import Any

from bench import catalog
from bench.db import start_server
from bench.fake_ai import FakeAI
from bench.ingest import episode
from bench.services import ai_env


def profile_ingest(server: Any, count: int, top: int) -> int:
    """`recommender.add_podcasts` in batches of 100 on a new, empty database."""
    dsn = catalog.recreate_database(server, "bench_profile_ingest")
    with FakeAI() as ai:
        os.environ.update({**ai_env(ai.base_url, 384), "DATABASE_URL": dsn})
        import recommender
        from schemas import AddPodcastRequest

        recommender.ensure_database()
        episodes = [AddPodcastRequest(**episode("profile", n)) for n in range(count)]
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for start in range(0, count, 100):
            recommender.add_podcasts(episodes[start : start + 100])
        profiler.disable()
        elapsed = time.perf_counter() - started
    print(f"{count} episodes in-process: {count / elapsed:.0f} episodes/s (profiled)")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--ab-split", default="history_only:100", help="AB_SPLIT for the run")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--ingest", type=int, default=0, help="profile bulk ingest of N episodes instead")
    args = parser.parse_args(argv)
    server = start_server()
    if args.ingest:
        return profile_ingest(server, args.ingest, args.top)
    spec = catalog.Spec(args.size, args.dims)
    info = catalog.build(server, spec)
    users = [f"profile{os.getpid()}-{n}" for n in range(20)]  # new users: a rerun needs no cleanup
    catalog.create_users(info["dsn"], users, catalog.user_vectors(spec, len(users), salt=888_888))
    with FakeAI() as ai:
        os.environ.update(
            {
                **ai_env(ai.base_url, args.dims),
                "DATABASE_URL": info["dsn"],
                "RESUGGEST_WINDOW_HOURS": "0",
                "AB_SPLIT": args.ab_split,
            }
        )
        import recommender  # settings are read on first use, after the environment is set
        from schemas import RecommendQuery

        recommender.ensure_database()
        for user in users:  # reasons written once
            recommender.recommend(RecommendQuery(user_id=user, limit=10))
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        for n in range(args.requests):
            recommender.recommend(RecommendQuery(user_id=users[n % len(users)], limit=10))
        profiler.disable()
        elapsed = time.perf_counter() - started
    print(f"{args.requests} requests in-process: {elapsed * 1000 / args.requests:.2f} ms each (profiled)")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
