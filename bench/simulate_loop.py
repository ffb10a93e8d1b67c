"""Feedback-loop simulation: does learning from feedback recommend better than history alone?

    python bench/simulate_loop.py                  # 40 users, 8 topics x 40 episodes, 8 rounds
    python bench/simulate_loop.py --rounds 12 --pause 10

Synthetic listeners with hidden tastes over the catalog's topics (see `bench/loop_catalog.py`)
state a noisy history once, then each round get 5 recommendations and react to each as their
hidden taste says: liked topic -> click and like (or complete), disliked -> dislike, neutral -> skip.
Two arms see the same catalog, users and reactions, each served by its own `local_runner.py`
over real HTTP on its own database: `history_only` (the reference design, which stores feedback
but ranks by the stated history alone) and `loop` (which learns from it). Precision@5 is the
share of a page in a liked topic. The table goes to stdout, `bench/LOOP_RESULTS.md` and the
`"loop"` key of `bench/results.json`.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script, `python bench/simulate_loop.py`
    sys.path.insert(0, str(ROOT))

from bench.loop_catalog import TOPICS, Listener, catalog, listeners  # noqa: E402
from tests.conftest import Api, fresh_database, run_api  # noqa: E402
from tests.fake_openai_server import FakeOpenAIServer  # noqa: E402

WORK = ROOT / "bench" / ".work"
RESULTS_JSON = ROOT / "bench" / "results.json"
RESULTS_MD = ROOT / "bench" / "LOOP_RESULTS.md"
ARMS = {"history_only": "history_only:100", "loop": "loop:100"}  # arm -> AB_SPLIT of its runner
PAGE = 5
USER_THREADS = 4  # users served at once within an arm
LOAD_BATCH = 64
REACTIONS = {"disliked": ["dislike"], "neutral": ["skip"]}  # "liked" depends on --positive
ABORT = threading.Event()  # set when one arm fails, so the other stops at its next round


@dataclass(frozen=True)
class Options:
    rounds: int
    users: int
    per_topic: int
    seed: int
    pause: float
    positive: str  # the event after a click on a liked episode: "like" or "complete"
    trace: int  # users whose pages are printed round by round


@dataclass
class ArmResult:
    precision: list[float] = field(default_factory=list)  # per round
    unstated: list[float] = field(default_factory=list)  # per round: share in the unnamed liked topic
    pages: dict[str, list[str]] = field(default_factory=dict)  # user -> per round, e.g. "Ll.D."
    engagement_rate: float | None = None


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


@contextmanager
def embedded_postgres() -> Iterator[str]:
    """The embedded Postgres under bench/.work/loop-pg, stopped on exit; yields its admin DSN."""
    import pgserver

    WORK.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(WORK / "loop-pg", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def checked(response: Any, *ok: int) -> Any:
    """The JSON body of an answer with one of the `ok` statuses; anything else raises."""
    if response.status_code not in ok:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
        )
    return response.json()


def load_catalog(api: Api, episodes: list[dict[str, str]]) -> None:
    """Through `POST /api/add_podcasts` in batches when the service has it, else one by one."""
    if api.get("/api/add_podcasts").status_code == 405:  # the route exists, for POST only
        for start in range(0, len(episodes), LOAD_BATCH):
            checked(api.post("/api/add_podcasts", episodes[start : start + LOAD_BATCH]), 200, 201, 207)
    else:
        for item in episodes:
            checked(api.post("/api/add_podcast", item), 201)
    ready = checked(api.get("/api/health"), 200)["podcasts"]["ready"]
    if ready != len(episodes):
        raise RuntimeError(f"{ready} of {len(episodes)} episodes are ready")


def mark(user: Listener, topic: str) -> str:
    """L: the liked topic the history names, l: the other liked one, D: disliked, .: neutral."""
    if topic in user.liked:
        return "L" if topic == user.liked[0] else "l"
    return "D" if topic in user.disliked else "."


def play_round(api: Api, user: Listener, arm: str, positive: str) -> str:
    """One page for `user` and their reaction to each item; returns its marks, e.g. "Ll.D."."""
    body = checked(api.get("/api/recommend_podcasts", params={"user_id": user.user_id, "limit": PAGE}), 200)
    if body["variant"] != arm:
        raise RuntimeError(f"{user.user_id} was served by {body['variant']!r}, not {arm!r}")
    marks = ""
    for item in body["recommendations"]:
        taste = user.taste(item["category"])
        marks += mark(user, item["category"])
        for event in REACTIONS.get(taste, ["click", positive]):
            feedback = {
                "user_id": user.user_id,
                "podcast_id": item["podcast_id"],
                "suggestion_id": item["suggestion_id"],
                "event": event,
            }
            checked(api.post("/api/feedback", feedback), 201)
    return marks


def run_arm(
    arm: str,
    admin_dsn: str,
    ai_base_url: str,
    episodes: list[dict[str, str]],
    users: list[Listener],
    options: Options,
) -> ArmResult:
    """Start this arm's runner on a fresh database, load catalog and users, play every round."""
    env = {
        "AI_PROVIDER": "openai",
        "OPENAI_BASE_URL": ai_base_url,
        "OPENAI_API_KEY": "x",
        "OPENAI_EMBEDDING_MODEL": "fake-embedding",
        "OPENAI_CHAT_MODEL": "fake-chat",
        "EMBEDDING_DIMENSIONS": "384",
        "AB_SPLIT": ARMS[arm],
    }
    (WORK / "loop-logs").mkdir(parents=True, exist_ok=True)
    dsn = fresh_database(admin_dsn, f"loop_{arm}")
    result = ArmResult(pages={u.user_id: [] for u in users})
    with run_api(dsn, env, WORK / "loop-logs" / f"{arm}.log") as api:
        load_catalog(api, episodes)
        for user in users:
            checked(
                api.post(
                    "/api/update_user_history", {"user_id": user.user_id, "listening_history": user.history}
                ),
                200,
            )
        log(f"{arm}: {len(episodes)} episodes and {len(users)} users loaded")
        with ThreadPoolExecutor(USER_THREADS) as pool:
            for number in range(1, options.rounds + 1):
                if ABORT.is_set():
                    raise RuntimeError(f"{arm}: stopped, the other arm failed")
                pages = list(pool.map(lambda u: play_round(api, u, arm, options.positive), users))
                for user, marks in zip(users, pages, strict=True):
                    result.pages[user.user_id].append(marks)
                slots = PAGE * len(users)
                result.precision.append(sum(p.count("L") + p.count("l") for p in pages) / slots)
                result.unstated.append(sum(p.count("l") for p in pages) / slots)
                log(f"{arm}: round {number} precision@{PAGE} {result.precision[-1]:.3f}")
                if options.pause and number < options.rounds:
                    time.sleep(options.pause)
        result.engagement_rate = checked(api.get("/api/analytics"), 200)["engagement_rate"]
    return result


def table(results: dict[str, ArmResult]) -> str:
    """Markdown: per round, precision@5 of each arm, the loop's lead, and the share of the pages
    in the liked topic the stated history does not name (what only feedback can reveal)."""
    base, loop = results["history_only"], results["loop"]
    lines = [
        f"| round | history-only p@{PAGE} | loop p@{PAGE} | delta | unnamed liked topic:"
        " history-only | unnamed liked topic: loop |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n in range(len(base.precision)):
        lead = loop.precision[n] - base.precision[n]
        lines.append(
            f"| {n + 1} | {base.precision[n]:.3f} | {loop.precision[n]:.3f} | {lead:+.3f}"
            f" | {base.unstated[n]:.3f} | {loop.unstated[n]:.3f} |"
        )
    return "\n".join(lines)


def traces(results: dict[str, ArmResult], users: list[Listener], count: int) -> str:
    """Each traced user's pages, round by round, as `mark` writes them."""
    lines = []
    for user in users[:count]:
        liked, disliked = user.liked, user.disliked
        lines.append(
            f"{user.user_id} likes {liked[0]} (named) and {liked[1]},"
            f" dislikes {disliked[0]} (named) and {disliked[1]}"
        )
        lines.extend(f"  {arm:<12} {' '.join(result.pages[user.user_id])}" for arm, result in results.items())
    return "\n".join(lines)


def save_json(results: dict[str, ArmResult], options: Options, catalog_size: int) -> None:
    """Replace only the "loop" key of bench/results.json; other scripts own the other keys."""
    figures = {
        "rounds": list(range(1, options.rounds + 1)),
        "history_only_precision_at_5": [round(p, 4) for p in results["history_only"].precision],
        "loop_precision_at_5": [round(p, 4) for p in results["loop"].precision],
        "unnamed_liked_topic_share": {arm: [round(p, 4) for p in r.unstated] for arm, r in results.items()},
        "users": options.users,
        "catalog_size": catalog_size,
        "topics": len(TOPICS),
        "seed": options.seed,
        "positive_event": options.positive,
        "pause_seconds": options.pause,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "engagement_rate": {arm: r.engagement_rate for arm, r in results.items()},
    }
    existing = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    RESULTS_JSON.write_text(json.dumps({**existing, "loop": figures}, indent=2) + "\n")


def save_markdown(
    results: dict[str, ArmResult], options: Options, users: list[Listener], catalog_size: int, seconds: float
) -> None:
    rates = ", ".join(f"{arm} {r.engagement_rate}" for arm, r in results.items())
    RESULTS_MD.write_text(
        f"""# Feedback-loop simulation

Written by `bench/simulate_loop.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {seconds:.0f} s.
Reproduce with `make bench-loop` (options: `.venv/bin/python bench/simulate_loop.py --help`).

## Setup

- **Catalog**: {len(TOPICS)} topics x {options.per_topic} episodes = {catalog_size}, synthetic text
  (`bench/loop_catalog.py`): each topic has its own 40-word vocabulary; an episode mixes its topic's
  words with generic podcast words and a few words of one other topic. `category` is the topic.
- **Listeners**: {options.users}, each with hidden tastes: 2 liked topics, 2 disliked, the rest
  neutral. Their stated `listening_history` (sent once) is noisy and partial: words of one liked and
  one disliked topic plus generic words; the second liked topic is never mentioned.
- **Rounds**: {options.rounds}. Each round every listener asks for {PAGE} recommendations and reacts
  by hidden taste: liked topic -> `click` then `{options.positive}`; disliked -> `dislike`; neutral
  -> `skip`. Pause between rounds: {options.pause:g} s. (`like` is the default because a `complete`
  also adds the episode to the listener's listens, which the history-only profile is built from:
  with `--positive complete` that arm learns from feedback too.)
- **Arms**: the same catalog, listeners (seed {options.seed}) and reactions, each arm on its own
  database and its own `local_runner.py`, over real HTTP: `AB_SPLIT=history_only:100` (the
  reference design: feedback stored, ranking by the stated history) and `AB_SPLIT=loop:100`.
- **Metric**: precision@{PAGE}, the share of a page in one of the listener's liked topics; also
  the share in the liked topic the history does not name, which only feedback can reveal. With
  {options.per_topic} episodes per topic and {PAGE} per page, a listener shown only their named
  liked topic runs out of fresh episodes of it after about {options.per_topic // PAGE} rounds.
- **AI**: `tests/fake_openai_server.py`: bag-of-words feature-hashing embeddings (384 dims); its
  "LLM" answers a summary or an interest profile with the first two sentences (at most 300
  characters) of the prompt: for an interest profile, the stated history and the top liked titles.

## Results

{table(results)}

Engagement rate (`GET /api/analytics`, suggestions with a positive event): {rates}.

Round 1 comes before any feedback: both arms rank by the same history vector, and the loop arm
also diversifies its page (MMR) and gives a slot to exploration about every other page, which can
cost it a little in that round. From round 2 on it ranks by the profile its feedback moved. The
last two columns show whether feedback finds the liked topic the history never mentions.

Pages of a few listeners, round by round (L: the liked topic their history names, l: the other
liked topic, D: disliked, .: neutral):

```
{traces(results, users, max(options.trace, 3))}
```

Figures vary by a few hundredths between runs: the `loop` arm explores without a seed, interest
profiles are rewritten by the runner's 10-second background timer, and the HNSW index (whose graph
pgvector builds with random levels) is approximate.
"""
    )


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--per-topic", type=int, default=40, help="episodes per topic")
    parser.add_argument("--seed", type=int, default=20_260_501)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between rounds")
    parser.add_argument(
        "--positive",
        choices=["like", "complete"],
        default="like",
        help="event after a click on a liked episode",
    )
    parser.add_argument("--trace", type=int, default=3, help="users whose pages are printed")
    args = parser.parse_args(argv)
    return Options(args.rounds, args.users, args.per_topic, args.seed, args.pause, args.positive, args.trace)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop runners and servers as on Ctrl+C
    started = time.monotonic()
    rng = random.Random(options.seed)
    episodes = catalog(rng, options.per_topic)
    users = listeners(rng, options.users)
    with (
        embedded_postgres() as admin_dsn,
        FakeOpenAIServer(dimensions=384) as ai,
        ThreadPoolExecutor(len(ARMS)) as pool,
    ):
        futures = {
            arm: pool.submit(run_arm, arm, admin_dsn, ai.openai_base_url, episodes, users, options)
            for arm in ARMS
        }
        try:
            results = {arm: future.result() for arm, future in futures.items()}
        except BaseException:
            ABORT.set()
            raise
    seconds = time.monotonic() - started
    print()
    print(table(results))
    print("\nengagement rate:", ", ".join(f"{arm} {r.engagement_rate}" for arm, r in results.items()))
    if options.trace:
        print("\n" + traces(results, users, options.trace))
    save_json(results, options, len(episodes))
    save_markdown(results, options, users, len(episodes), seconds)
    print(
        f"\n{seconds:.0f} s; wrote {RESULTS_MD.relative_to(ROOT)} and the 'loop' key of {RESULTS_JSON.name}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
