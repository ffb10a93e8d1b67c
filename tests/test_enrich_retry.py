"""Enrichment never gives up for good, and health tells the AI service's state (issue 10, item 4).

A runner with few fast retries and an hourly slow retry, on its own fake AI server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.conftest import FAKE_API_KEY, ROOT, Api, openai_env, wait_for
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = pytest.mark.service  # over HTTP, against local_runner.py in a subprocess

SETTINGS = {
    "AI_MAX_RETRIES": "0",
    "AI_TIMEOUT_SECONDS": "5",
    "ENRICH_MAX_ATTEMPTS": "2",
    "ENRICH_SLOW_RETRY_SECONDS": "3600",
    "AI_PROBE_SECONDS": "1",
}
OUTAGE = 1_000_000  # requests that fail: until the test ends the outage


def add_given_up_podcast(api: Api, fake: FakeOpenAIServer) -> int:
    """An episode posted during an outage that the worker retried ENRICH_MAX_ATTEMPTS times."""
    fake.reset()
    fake.fail_next = OUTAGE
    body = {"title": "Tide pools", "transcript": f"Crabs and anemones {uuid.uuid4().hex}. Starfish too."}
    response = api.post("/api/add_podcast", body)
    assert response.status_code == 202, response.text
    podcast_id = response.json()["id"]
    assert wait_for(lambda: attempts(api, podcast_id) >= 2, timeout=40), api.log()[-3000:]
    return podcast_id


def attempts(api: Api, podcast_id: int) -> int:
    return api.query("SELECT enrich_attempts FROM podcasts WHERE id = %s", (podcast_id,))[0][0]


def status(api: Api, podcast_id: int) -> str:
    return api.query("SELECT status FROM podcasts WHERE id = %s", (podcast_id,))[0][0]


def next_attempt_in_an_hour(api: Api, podcast_id: int) -> bool:
    return api.query(
        "SELECT next_attempt_at > now() + interval '50 minutes' FROM podcasts WHERE id = %s", (podcast_id,)
    ) == [(True,)]


def test_given_up_episode_is_retried_slowly_then_at_once_when_the_ai_is_back(
    api: Api, fake: FakeOpenAIServer
):
    podcast_id = add_given_up_podcast(api, fake)
    assert next_attempt_in_an_hour(api, podcast_id)
    health = api.get("/api/health")
    assert health.status_code == 200  # degraded, not down: the API still answers
    body = health.json()
    assert body["status"] == "degraded"
    assert body["ai"]["status"] == "failing"
    assert body["ai"]["last_error"].endswith("request failed: InternalServerError")
    assert body["podcasts"]["failed"] >= 1
    assert FAKE_API_KEY not in health.text

    # An hour later (simulated) the slow retry tries again, and gives it another hour.
    api.query("UPDATE podcasts SET next_attempt_at = now() WHERE id = %s", (podcast_id,))
    assert wait_for(lambda: attempts(api, podcast_id) == 3, timeout=40), api.log()[-3000:]
    assert next_attempt_in_an_hour(api, podcast_id)

    # The service is back: the health probe sees it, and the worker requeues the episode at once.
    fake.fail_next = 0
    assert wait_for(lambda: api.get("/api/health").json()["ai"]["status"] == "ok")
    assert wait_for(lambda: status(api, podcast_id) == "ready", timeout=40), api.log()[-3000:]
    body = api.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["ai"]["last_success"] is not None
    assert body["podcasts"]["failed"] == 0


def test_cli_retry_failed_requeues_given_up_episodes(api: Api, fake: FakeOpenAIServer):
    podcast_id = add_given_up_podcast(api, fake)
    fake.fail_next = 0  # back, but nothing asks it: the episode would wait for its slow retry
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_", "AI_"))}
    env |= {"DATABASE_URL": api.dsn, "HF_HUB_OFFLINE": "1", **openai_env(fake, **SETTINGS)}
    result = subprocess.run(
        [sys.executable, "cli.py", "retry-failed"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "requeued 1 podcasts" in result.stdout
    assert wait_for(lambda: status(api, podcast_id) == "ready", timeout=40), api.log()[-3000:]
    assert attempts(api, podcast_id) == 0
