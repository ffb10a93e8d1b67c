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
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil

from bench import services
from bench.db import WORK_DIR, create_database, scalar, start_server
from bench.report import BENCH_DIR, code_version, log, machine, machine_line, table, update_results
from bench.soak_traffic import Catalogue, Mix, run

SOAK_MD = BENCH_DIR / "SOAK_RESULTS.md"
LOG_PATTERNS = {  # lines of the service's log counted after the run
    "DeadlockDetected": "DeadlockDetected",
    "Traceback": "Traceback",
    "timer failed": "timer function",
    "database unavailable": "database unavailable in",
}


class RssSampler:
    """The resident set of a process and its descendants, every `interval` seconds, on a thread."""

    def __init__(self, pid: int, interval: float = 5.0) -> None:
        self.pid, self.interval, self.samples = pid, interval, []
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss_mb(self) -> float:
        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0
        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return round(total / 2**20, 1)

    def _run(self) -> None:
        while True:
            self.samples.append({"at_s": round(time.perf_counter() - self.started), "mb": self.rss_mb()})
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


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
    base_url: str,
    dsn: str,
    service_pid: int,
    clients: int,
    seconds: float,
    mix: Mix | None = None,
    window: float = 30.0,
    stop_service: Callable[[], None] | None = None,
    service_log: Path | None = None,
) -> dict[str, Any]:
    """Run the traffic against a running service; returns the figures. `stop_service` is called
    before the deadlock count is read again (a backend reports its deadlocks as it ends)."""
    mix = mix or Mix()
    catalogue = Catalogue(dsn)
    pg_log = postgres_log(dsn)
    pg_offset, before = log_size(pg_log), deadlocks(dsn)
    with RssSampler(service_pid, interval=min(5.0, window / 2)) as rss:
        stats = run(base_url, clients, seconds, mix, catalogue)
    if stop_service is not None:
        stop_service()
    time.sleep(1.0)  # backends flush their statistics within a second of their last transaction
    after = deadlocks(dsn)
    mb = [s["mb"] for s in rss.samples]
    return {
        "clients": clients,
        "seconds": seconds,
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
        "deadlocks_before": before,
        "deadlocks_after": after,
        "deadlocks": after - before,
        "postgres_deadlocks": deadlock_reports(pg_log, pg_offset),
        "service_log": log_counts(service_log.read_text(errors="replace")) if service_log else {},
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
    setup += f"{figures['clients']} listeners for {duration} against `local_runner.py --workers 2`"
    setup += " (offline `local` provider, sample catalogue), mixed traffic (`bench/soak_traffic.py`)."
    if figures.get("machine"):
        setup += " " + machine_line(figures["machine"])
    parts = [
        "# Soak results\n",
        setup + "\n",
        table(columns, rows),
        f"\n{figures['requests']:,} requests, {figures['rps']} req/s;"
        f" per {figures['window']:g} s: {throughput}.\n",
        f"Service RSS (all processes): {rss.get('start')} MiB at start, {rss.get('max')} max,"
        f" {rss.get('end')} at the end.\n",
        f"5xx: {figures['errors_5xx']} {figures['error_codes'] or ''}; without an answer:"
        f" {figures['transport_errors']}. Deadlocks (pg_stat_database): {figures['deadlocks']}."
        f" Service log: {figures['service_log']}.\n",
    ]
    for report in figures["postgres_deadlocks"][:5]:
        statements = "\n".join(f"    {s}" for s in report["statements"])
        parts.append(f"- {report['count']} deadlocks, waiting for {report['waits']}:\n\n{statements}\n")
    verdict = failures(figures)
    parts.append(
        "**FAILED**: " + "; ".join(verdict) + "\n" if verdict else "**Clean**: no 5xx, no deadlock.\n"
    )
    return "\n".join(parts)


def seed(dsn: str, log_path: Path | None = None) -> None:
    """`python cli.py seed` on `dsn`, on the `local` provider, as `make run` seeds a fresh database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_", "AI_"))}
    env.update(DATABASE_URL=dsn, AI_PROVIDER="local", HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "cli.py", "seed"], cwd=services.ROOT, env=env, capture_output=True, text=True
    )
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(done.stdout + done.stderr)
    if done.returncode:
        raise RuntimeError(f"cli.py seed failed:\n{done.stdout}{done.stderr}")


def runner_pid() -> int:
    """The `local_runner.py` this process started (its workers are its children)."""
    for child in psutil.Process().children():
        if any("local_runner.py" in part for part in child.cmdline()):
            return child.pid
    raise RuntimeError("no local_runner.py child process")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args(argv)
    server = start_server()
    dsn = create_database(server, "bench_soak")
    log("seeding the sample catalogue (python cli.py seed, local provider)")
    seed(dsn, WORK_DIR / "logs" / "soak-seed.log")
    service_log = WORK_DIR / "logs" / "soak.log"  # services.process writes the runner's output there
    runner = services.process(
        [str(services.ROOT / "local_runner.py"), "--workers", services.WORKERS],
        {"DATABASE_URL": dsn, "AI_PROVIDER": "local"},
        "/api/health",
        "soak",
    )
    log(f"{args.clients} listeners for {args.minutes:g} min against local_runner.py --workers 2")
    with contextlib.ExitStack() as running:
        url = running.enter_context(runner)
        seconds = args.minutes * 60
        figures = soak(
            url, dsn, runner_pid(), args.clients, seconds, stop_service=running.close, service_log=service_log
        )
    figures.update(measured=time.strftime("%Y-%m-%d %H:%M"), code=code_version(), machine=machine(server))
    update_results(lambda results: results.update(soak=figures))
    text = markdown(figures)
    SOAK_MD.write_text(text)
    print(text)
    log(f"figures: bench/results.json (soak), bench/{SOAK_MD.name}; service log: {service_log}")
    return 1 if failures(figures) else 0


if __name__ == "__main__":
    raise SystemExit(main())
