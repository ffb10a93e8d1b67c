"""The timer functions of the local runner: run in one process per database, the holder of a
Postgres advisory lock (another takes over within seconds when it stops), woken at once by
catalogue changes (LISTEN)."""

from __future__ import annotations

import logging
import os
import re
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
from azure.functions.decorators.function_app import Function
from azure.functions.timer import TimerRequest

import db_utils
from config import get_settings
from recommender import store

BACKGROUND_LOCK_ID = 4_711_003  # pg_advisory_lock key: one process per database runs the timers
LOCK_RETRY_SECONDS = 3.0  # how often a process without the lock tries to take it over
JOIN_SECONDS = 5.0  # how long stopping waits for a timer function that is running

log = logging.getLogger("local_runner")


@dataclass(frozen=True)
class Timer:
    name: str
    interval_seconds: float
    arg_name: str
    handler: Callable[..., None]


def schedule_interval(schedule: str) -> float:
    """Seconds between runs for the NCRONTAB forms `*/N * * * * *`, `0 */N * * * *` and
    `0 0 */N * * *` (`*` for N = 1); a `%SETTING%` schedule is read from the settings first."""
    schedule = re.sub(r"%(\w+)%", lambda m: str(getattr(get_settings(), m[1].lower())), schedule)
    fields = schedule.split()
    for unit, position in ((1.0, 0), (60.0, 1), (3600.0, 2)):
        if (
            len(fields) == 6
            and fields[:position] == ["0"] * position
            and fields[position + 1 :] == ["*"] * (5 - position)
        ):
            every = fields[position]
            if every == "*" or every.startswith("*/"):
                return unit * float(every[2:] or 1)
    return 60.0


def timers(functions: list[Function]) -> list[Timer]:
    return [
        Timer(f.get_function_name(), schedule_interval(t.schedule), t.name, f.get_user_function())
        for f in functions
        if (t := f.get_trigger()) is not None and t.type == "timerTrigger"
    ]


def run_timer(timer: Timer, stop: threading.Event, wake: threading.Event) -> None:
    """Run the timer function every interval, or at once when `wake` is set."""
    while not stop.is_set():
        wake.wait(timer.interval_seconds)
        wake.clear()
        if stop.is_set():
            return
        try:
            timer.handler(**{timer.arg_name: TimerRequest()})
        except Exception:
            log.exception("timer function %s failed", timer.name)


def run_background(timers: list[Timer], stop: threading.Event) -> None:
    """Run `timers` while this process holds the database's background lock; without it, try
    again every LOCK_RETRY_SECONDS, so another process takes over when the holder stops or dies.

    The lock is session-level, on a connection of its own that also LISTENs for catalog changes."""
    while not stop.is_set():
        try:
            with db_utils.dedicated_connection(f"local-runner-{os.getpid()}") as conn:
                conn.autocommit = True
                while not stop.is_set():
                    if db_utils.try_advisory_lock(conn, BACKGROUND_LOCK_ID):
                        store.podcasts.listen_for_changes(conn)
                        run_timers(conn, timers, stop)
                    else:
                        stop.wait(LOCK_RETRY_SECONDS)
        except psycopg2.Error as exc:
            log.warning("background worker lost its database connection (%s); retrying", type(exc).__name__)
            stop.wait(LOCK_RETRY_SECONDS)


def run_timers(conn: psycopg2.extensions.connection, timers: list[Timer], stop: threading.Event) -> None:
    """Run `timers`, at once when `conn` is notified, until `stop` is set or `conn` breaks."""
    names = ", ".join(timer.name for timer in timers)
    log.info("background worker: this process (pid %d) runs %s", os.getpid(), names)
    done = threading.Event()
    wakes = [threading.Event() for _ in timers]
    threads = [
        threading.Thread(target=run_timer, args=(timer, done, wake), name=timer.name, daemon=True)
        for timer, wake in zip(timers, wakes, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        while not stop.is_set():
            if select.select([conn], [], [], 1.0)[0]:
                conn.poll()  # raises when the connection, and with it the lock, is lost
                if conn.notifies:
                    conn.notifies.clear()
                    for wake in wakes:
                        wake.set()
    finally:
        done.set()
        for wake in wakes:
            wake.set()
        for thread in threads:
            thread.join(JOIN_SECONDS)
