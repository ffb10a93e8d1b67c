"""Soak: listeners doing what a frontend does, for minutes, against the service as `make run` runs it.

    python -m bench.soak                           # make bench-soak: 16 clients for 10 minutes
    python -m bench.soak --clients 8 --minutes 2

A fresh database on the bench's embedded Postgres, seeded with `python cli.py seed` (the sample
catalogue), served by `local_runner.py --workers 2` on the offline `local` provider. Each client
is a listener: it sets up a history, then loops: a page, a like, skip, listen or complete on two
of its items with their `suggestion_id` (sometimes as one bulk array), now and then a search or a
history update, rarely a new episode or a health check. Recorded: per route the count, statuses
and p50/p99; every 5xx with its error code and body; throughput per 30 s; the service's RSS;
`pg_stat_database.deadlocks` before and after; `DeadlockDetected` and `Traceback` lines in the
service's log and the statements of each deadlock in Postgres' log. Written to the `soak` key of
bench/results.json (the other keys untouched) and bench/SOAK_RESULTS.md. Exits 1 on any 5xx,
transport error or deadlock. `tests/test_soak.py` runs a short version of the same traffic.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil

from bench import services
from bench.db import WORK_DIR, create_database, scalar, start_server
from bench.fake_ai import FakeAI
from bench.report import BENCH_DIR, code_version, log, machine, machine_line, table, update_results
from bench.rss import RssSampler, settling
from bench.soak_traffic import Catalogue, Mix, run

SOAK_MD = BENCH_DIR / "SOAK_RESULTS.md"
DIMENSIONS = 384  # of the fake OpenAI server's embeddings
LOG_PATTERNS = {  # lines of the service's log counted after the run
    "DeadlockDetected": "DeadlockDetected",
    "Traceback": "Traceback",
    "timer failed": "timer function",
    "database unavailable": "database unavailable in",
}


# Each refresh's end in the runners' log (`worker/collaborative.py`): its time, pid and duration.
REFRESH_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO \[(\d+)\] recommender\.worker\.collaborative:"
    r" collaborative model: .* in ([\d.]+) s",
    re.MULTILINE,
)
TIMER_HOLDER_LINE = re.compile(r"\[(\d+)\] local_runner: background worker: this process")


def timer_work(logs: list[str], summarized: dict[str, int]) -> dict[str, Any]:
    """What the timers did across all instances: the refreshes (how many overlapped another, how
    many ran in a serving process rather than a training's own), which processes took the timers,
    and the episodes the AI service summarized more than once."""
    refreshes = []
    for text in logs:
        for stamp, millis, pid, seconds in REFRESH_LINE.findall(text):
            end = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000
            refreshes.append((end - float(seconds), end, pid))
    refreshes.sort()
    overlapping = sum(1 for a, b in itertools.pairwise(refreshes) if b[0] < a[1])
    holders = [pid for text in logs for pid in TIMER_HOLDER_LINE.findall(text)]
    return {
        "refreshes": len(refreshes),
        "refreshes_overlapping": overlapping,
        "refreshing_processes": len({pid for *_, pid in refreshes}),
        "refreshes_in_a_serving_process": sum(1 for *_, pid in refreshes if pid in holders),
        "timer_takeovers": len(holders),
        "episodes_summarized": len(summarized),
        "summarized_twice": {title: n for title, n in summarized.items() if n > 1},
    }


def deadlocks(dsn: str) -> int:
    return scalar(dsn, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")


def postgres_log(dsn: str) -> Path:
    """The embedded server's log (pgserver starts it with `pg_ctl -l DATA_DIR/log`)."""
    return Path(scalar(dsn, "SELECT current_setting('data_directory')")) / "log"


def log_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def normalized(statement: str, width: int = 200) -> str:
    """A statement without its literals (ids, vectors, rows of values), on one line."""
    statement = re.sub(r"'(?:[^']|'')*'", "?", " ".join(statement.split()))
    statement = re.sub(r"-?\b\d+(?:\.\d+)?(?:e[-+]?\d+)?\b", "?", statement)
    statement = re.sub(r"ARRAY\[[?, ]*\]", "ARRAY[...]", statement)
    statement = re.sub(r"VALUES\s*\([^()]*\)(?:\s*,\s*\([^()]*\))*", "VALUES (...)", statement)
    return statement[:width]


def deadlock_reports(path: Path, offset: int) -> list[dict[str, Any]]:
    """Each `deadlock detected` in Postgres' log after `offset`: what each process waited for and
    its statement, counted by the pair of statements."""
    if not path.exists():
        return []
    with path.open("rb") as file:
        file.seek(offset)
        text = file.read().decode(errors="replace")
    entries = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", text)
    pairs: Counter[tuple[tuple[str, ...], tuple[str, ...]]] = Counter()
    for previous, entry in itertools.pairwise(entries):
        if "deadlock detected" not in previous or "DETAIL:" not in entry:
            continue
        detail = entry.split("DETAIL:", 1)[1]
        waits = tuple(sorted(set(re.findall(r"waits for (\w+ on [\w ]+?) (?:\d|of|;)", detail))))
        statements = re.split(r"\n\s*Process \d+: ", detail)[1:]
        pairs[tuple(sorted(normalized(s) for s in statements)), waits] += 1
    return [
        {"count": count, "statements": list(statements), "waits": list(waits)}
        for (statements, waits), count in pairs.most_common()
    ]


def log_counts(text: str) -> dict[str, int]:
    lines = text.splitlines()
    return {name: sum(pattern in line for line in lines) for name, pattern in LOG_PATTERNS.items()}


def soak(
    base_urls: list[str],
    dsn: str,
    service_pids: list[int],
    clients: int,
    seconds: float,
    mix: Mix | None = None,
    window: float = 30.0,
    stop_service: Callable[[], None] | None = None,
    service_logs: list[Path] = (),
    summarized: Callable[[], dict[str, int]] | None = None,
) -> dict[str, Any]:
    """Run the traffic against running instances of the service (each request to the next one, so
    what one instance prepared the other serves); returns the figures. `stop_service` is called
    before the deadlock count is read again (a backend reports its deadlocks as it ends);
    `summarized` tells how often the AI service summarized each episode."""
    mix = mix or Mix()
    catalogue = Catalogue(dsn)
    pg_log = postgres_log(dsn)
    pg_offset, before = log_size(pg_log), deadlocks(dsn)
    with RssSampler(service_pids, interval=min(window, seconds / 4)) as rss:
        stats = run(base_urls, clients, seconds, mix, catalogue)
    if stop_service is not None:
        stop_service()
    time.sleep(1.0)  # backends flush their statistics within a second of their last transaction
    after = deadlocks(dsn)
    mb = [s["mb"] for s in rss.samples]
    logs = [path.read_text(errors="replace") for path in service_logs]
    return {
        "clients": clients,
        "seconds": seconds,
        "instances": len(base_urls),
        "mix": asdict(mix),
        "requests": len(stats.answers),
        "rps": round(len(stats.answers) / seconds, 1),
        "routes": stats.routes(),
        "errors_5xx": stats.five_xx(),
        "transport_errors": stats.transport_errors(),
        "error_codes": dict(stats.error_codes.most_common()),
        "errors": stats.errors,
        "window": window,
        "throughput": stats.throughput(window, seconds),
        "rss_mb": {"start": mb[0], "max": max(mb), "end": mb[-1], "samples": rss.samples} if mb else {},
        "rss_settled_from_s": round(seconds / 3),
        "rss_settled": settling(rss.samples, seconds / 3) if mb else {},
        "timer_work": timer_work(logs, summarized() if summarized else {}),
        "deadlocks_before": before,
        "deadlocks_after": after,
        "deadlocks": after - before,
        "postgres_deadlocks": deadlock_reports(pg_log, pg_offset),
        "service_log": log_counts("\n".join(logs)),
    }


def failures(figures: dict[str, Any]) -> list[str]:
    """What went wrong, one line each; empty when the run was clean."""
    found = []
    if figures["errors_5xx"]:
        found.append(f"{figures['errors_5xx']} answers 5xx: {figures['error_codes']}")
    if figures["transport_errors"]:
        found.append(f"{figures['transport_errors']} requests without an answer")
    if figures["deadlocks"]:
        found.append(f"{figures['deadlocks']} deadlocks in pg_stat_database")
    work = figures["timer_work"]
    if work["summarized_twice"]:
        found.append(f"{len(work['summarized_twice'])} episodes summarized more than once")
    if work["refreshes_overlapping"]:
        found.append(f"{work['refreshes_overlapping']} refreshes overlapped another")
    if figures["service_log"].get("DeadlockDetected"):
        found.append(
            f"{figures['service_log']['DeadlockDetected']} DeadlockDetected lines in the service log"
        )
    return found


def markdown(figures: dict[str, Any]) -> str:
    columns = [("route", "route"), ("requests", "count"), ("statuses", "statuses")]
    columns += [("p50 ms", "p50_ms"), ("p99 ms", "p99_ms")]
    rows = [
        {**f, "route": route, "statuses": ", ".join(f"{s}: {n}" for s, n in f["statuses"].items())}
        for route, f in figures["routes"].items()
    ]
    rss, seconds = figures["rss_mb"], figures["seconds"]
    duration = f"{seconds / 60:g} min" if seconds >= 120 else f"{seconds:g} s"
    throughput = ", ".join(f"{w['rps']:g}" for w in figures["throughput"])
    setup = (
        f"`make bench-soak` on {figures['measured']}, code {figures['code']}: " if "code" in figures else ""
    )
    setup += f"{figures['clients']} listeners for {duration} against {figures['instances']} x"
    setup += " `local_runner.py --workers 2`"
    setup += " on one database (each request to the next instance), the `openai` provider on the fake"
    setup += " OpenAI server, sample catalogue, mixed traffic (`bench/soak_traffic.py`)."
    if figures.get("machine"):
        setup += " " + machine_line(figures["machine"])
    settled = figures["rss_settled"]
    first = rss["samples"][0]["processes"] if rss else {}
    memory_rows = [
        {"process": name, "start": first.get(name, ""), **figures_of} for name, figures_of in settled.items()
    ]
    memory_rows[0]["start"] = rss.get("start") if rss else ""  # the serving processes' sum
    memory_columns = [("process", "process"), ("MiB at start", "start")]
    memory_columns += [("least", "min"), ("most", "max"), ("spread %", "spread_pct"), ("at the end", "end")]
    work = figures["timer_work"]
    parts = [
        "# Soak results\n",
        setup + "\n",
        table(columns, rows),
        f"\n{figures['requests']:,} requests, {figures['rps']} req/s;"
        f" per {figures['window']:g} s: {throughput}.\n",
        f"Resident memory, sampled every {figures['window']:g} s; least, most and spread from"
        f" {figures['rss_settled_from_s']} s on (the last two thirds of the run):\n",
        table(memory_columns, memory_rows),
        f"\nTimers across the instances: {work['refreshes']} model refreshes by"
        f" {work['refreshing_processes']} processes ({work['refreshes_in_a_serving_process']} in a serving"
        f" one), {work['refreshes_overlapping']} overlapping another;"
        f" the timers taken {work['timer_takeovers']} times; {work['episodes_summarized']} episodes"
        f" summarized, {len(work['summarized_twice'])} of them more than once.\n",
        f"5xx: {figures['errors_5xx']} {figures['error_codes'] or ''}; without an answer:"
        f" {figures['transport_errors']}. Deadlocks (pg_stat_database): {figures['deadlocks']}."
        f" Service log: {figures['service_log']}.\n",
    ]
    for report in figures["postgres_deadlocks"][:5]:
        statements = "\n".join(f"    {s}" for s in report["statements"])
        parts.append(f"- {report['count']} deadlocks, waiting for {report['waits']}:\n\n{statements}\n")
    verdict = failures(figures)
    parts.append(
        "**FAILED**: " + "; ".join(verdict) + "\n"
        if verdict
        else "**Clean**: no 5xx, no deadlock, no timer work done twice.\n"
    )
    return "\n".join(parts)


def seed(dsn: str, ai: dict[str, str], log_path: Path | None = None) -> None:
    """`python cli.py seed` on `dsn` with the AI settings `ai`, as `make run` seeds a fresh database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_", "AI_"))}
    env.update({"HF_HUB_OFFLINE": "1", **ai, "DATABASE_URL": dsn})
    done = subprocess.run(
        [sys.executable, "cli.py", "seed"], cwd=services.ROOT, env=env, capture_output=True, text=True
    )
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(done.stdout + done.stderr)
    if done.returncode:
        raise RuntimeError(f"cli.py seed failed:\n{done.stdout}{done.stderr}")


def runner_pid(base_url: str) -> int:
    """The `local_runner.py` this process started on the port of `base_url` (its workers are its
    children)."""
    port = base_url.rsplit(":", 1)[1]
    for child in psutil.Process().children():
        command = child.cmdline()
        if any("local_runner.py" in part for part in command) and command[-1] == port:
            return child.pid
    raise RuntimeError(f"no local_runner.py child process on port {port}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--instances", type=int, default=2, help="local_runner.py processes on one database")
    args = parser.parse_args(argv)
    server = start_server()
    dsn = create_database(server, "bench_soak")
    with FakeAI() as ai, contextlib.ExitStack() as running:
        env = {"DATABASE_URL": dsn, **services.ai_env(ai.base_url, DIMENSIONS)}
        log("seeding the sample catalogue (python cli.py seed, the fake OpenAI server)")
        seed(dsn, env, WORK_DIR / "logs" / "soak-seed.log")
        runner = [str(services.ROOT / "local_runner.py"), "--workers", services.WORKERS]
        names = [f"soak-{n}" for n in range(1, args.instances + 1)]
        urls = [running.enter_context(services.process(runner, env, "/api/health", name)) for name in names]
        log(f"{args.clients} listeners for {args.minutes:g} min against {args.instances} x local_runner.py")
        figures = soak(
            urls,
            dsn,
            [runner_pid(url) for url in urls],
            args.clients,
            args.minutes * 60,
            stop_service=running.close,  # the runners only: the fake AI server still counts
            service_logs=[WORK_DIR / "logs" / f"{name}.log" for name in names],
            summarized=ai.summarized,
        )
    figures.update(measured=time.strftime("%Y-%m-%d %H:%M"), code=code_version(), machine=machine(server))
    update_results(lambda results: results.update(soak=figures))
    text = markdown(figures)
    SOAK_MD.write_text(text)
    print(text)
    log(f"figures: bench/results.json (soak), bench/{SOAK_MD.name}; service logs: {WORK_DIR / 'logs'}")
    return 1 if failures(figures) else 0


if __name__ == "__main__":
    raise SystemExit(main())
