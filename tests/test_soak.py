"""Mixed writes do not deadlock (issue 21): eight listeners doing what a frontend does for 40 s.

The service as `make run` starts it (`python cli.py seed` on a fresh database, then
`local_runner.py --workers 2`, here on the `openai` provider against the fake AI server), and the
traffic of `make bench-soak` (`bench/soak_traffic.py`): pages, a like, skip, listen or complete
on two items of each with their `suggestion_id` (posted in the background, as a frontend posts a
tap, sometimes as a bulk array), searches, history updates, a new episode now and then, the
timer's interest profiles.
On the code before the fix of issue 21 (1306277) these 40 s gave 100 to 140 deadlocks (feedback's
and the timer's `INSERT INTO pages_due` against a page's `INSERT INTO suggested_podcasts`) and 95 to
130 answers 503 `database_unavailable`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from bench import soak
from tests.conftest import openai_env, run_api
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = pytest.mark.service  # over HTTP, against local_runner.py in a subprocess

CLIENTS = 8
SECONDS = 40


@pytest.fixture(scope="module")
def figures(create_database, fake: FakeOpenAIServer, tmp_path_factory) -> dict[str, Any]:
    """One soak run; the service is stopped before the deadlock count is read again."""
    dsn = create_database("soak")
    logs = tmp_path_factory.mktemp("logs")
    env = openai_env(fake)
    soak.seed(dsn, env, logs / "soak-seed.log")
    service_log = logs / "soak.log"
    with contextlib.ExitStack() as running:
        api = running.enter_context(run_api(dsn, env, service_log, "--workers", "2"))
        return soak.soak(
            [api.base_url],
            dsn,
            [api.process.pid],
            CLIENTS,
            SECONDS,
            stop_service=running.close,
            service_logs=[service_log],
            summarized=lambda: fake.summarized,
        )


def test_the_listeners_kept_busy(figures: dict[str, Any]):
    routes = figures["routes"]
    assert routes["GET recommend_podcasts"]["count"] >= CLIENTS * 10, soak.markdown(figures)
    assert (
        routes["POST feedback"]["count"] + routes.get("POST feedback[]", {}).get("count", 0) >= CLIENTS * 10
    )
    assert routes["POST update_user_history"]["count"] >= CLIENTS


def test_no_answer_is_a_5xx(figures: dict[str, Any]):
    assert figures["errors_5xx"] == 0, soak.markdown(figures)
    assert figures["transport_errors"] == 0, soak.markdown(figures)


def test_postgres_counted_no_deadlock(figures: dict[str, Any]):
    assert figures["deadlocks"] == 0, soak.markdown(figures)


def test_the_service_log_has_no_deadlock(figures: dict[str, Any]):
    assert figures["service_log"]["DeadlockDetected"] == 0, soak.markdown(figures)
    assert figures["service_log"]["Traceback"] == 0, soak.markdown(figures)


def test_the_memory_of_every_process_is_recorded(figures: dict[str, Any]):
    last = figures["rss_mb"]["samples"][-1]
    assert {"instance 1 runner"} < set(last["processes"]), last  # the runner and its workers
    assert len([name for name in last["processes"] if " worker " in name]) >= 2, last
    serving = [mb for name, mb in last["processes"].items() if " training " not in name]
    assert last["mb"] == pytest.approx(sum(serving), abs=0.5)
    assert figures["rss_settled"]["serving"]["max"] >= figures["rss_settled"]["serving"]["min"] > 0


def test_no_timer_work_was_done_twice(figures: dict[str, Any]):
    work = figures["timer_work"]
    assert work["episodes_summarized"] > 0 and work["summarized_twice"] == {}, work
    assert work["timer_takeovers"] == 1 and work["refreshes_overlapping"] == 0, work


def test_the_models_train_in_processes_of_their_own(figures: dict[str, Any]):
    """Each refresh in a child process of its own, so none leaves its memory in a serving one."""
    work = figures["timer_work"]
    assert work["refreshes"] >= 2, work
    assert work["refreshing_processes"] == work["refreshes"], work
    assert work["refreshes_in_a_serving_process"] == 0, work
