"""A request whose process died answers once when it is retried: its Idempotency-Key is taken
over at once (its holder is gone), and what it stored before dying is found, not stored again."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
import pytest

from tests.conftest import Api, openai_env, run_api, wait_for
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = pytest.mark.service  # over HTTP, against local_runner.py in a subprocess

EPISODE = {"title": "Lighthouse keepers", "transcript": "Lamps, storms and the keepers who tended them."}


def post_and_ignore_the_end(api: Api, path: str, body: dict, key: str) -> threading.Thread:
    """Post in the background; the process will die under it."""

    def post() -> None:
        with contextlib.suppress(httpx.HTTPError):
            api.post(path, body, headers={"Idempotency-Key": key})

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


def test_a_retry_after_the_process_died_mid_request_runs_once(
    create_database, fake: FakeOpenAIServer, tmp_path
) -> None:
    dsn = create_database("crash")
    env = openai_env(fake, REQUEST_BUDGET_SECONDS="60", AI_TIMEOUT_SECONDS="60", AI_MAX_RETRIES="0")
    with run_api(dsn, env, tmp_path / "dies.log") as api:
        fake.chat_delay_seconds = fake.embedding_delay_seconds = 120.0  # every AI call hangs
        post_and_ignore_the_end(api, "/api/add_podcast", EPISODE, "episode-key")
        history = {"user_id": "keeper", "listening_history": "lighthouses and storms"}
        post_and_ignore_the_end(api, "/api/update_user_history", history, "history-key")
        stored = "SELECT count(*) FROM podcasts WHERE title = %s"
        assert wait_for(lambda: api.query(stored, (EPISODE["title"],)) == [(1,)], timeout=20)
        claimed = "SELECT count(*) FROM idempotency_keys WHERE status IS NULL"
        assert wait_for(lambda: api.query(claimed) == [(2,)], timeout=20)
        api.process.kill()  # kill -9: in the summary call, and in the history's embedding
        api.process.wait()
    fake.reset()
    with run_api(dsn, env, tmp_path / "retries.log") as api:
        started = time.monotonic()
        episode = api.post("/api/add_podcast", EPISODE, headers={"Idempotency-Key": "episode-key"})
        listener = api.post("/api/update_user_history", history, headers={"Idempotency-Key": "history-key"})
        seconds = time.monotonic() - started
        assert episode.status_code == 201 and listener.status_code == 200, (episode.text, listener.text)
        assert seconds < 10, seconds  # taken over at once: no 409 while a lease runs out
        assert api.query(stored, (EPISODE["title"],)) == [(1,)]  # the row the first attempt stored
        again = api.post("/api/add_podcast", EPISODE, headers={"Idempotency-Key": "episode-key"})
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json()["id"] == episode.json()["id"]


def test_what_a_lost_answer_stored_is_found_by_its_retry(openai_api: Api) -> None:
    """The answer was lost (here: its stored copy deleted, as if the process died after the
    commit): the retry with the same key finds the episode and the event instead of adding them."""
    body = {**EPISODE, "title": "Foghorns"}
    first = openai_api.post("/api/add_podcast", body, headers={"Idempotency-Key": "lost-episode"})
    openai_api.query("DELETE FROM idempotency_keys WHERE key = 'lost-episode'")
    retry = openai_api.post("/api/add_podcast", body, headers={"Idempotency-Key": "lost-episode"})
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json()["id"] == first.json()["id"]
    assert openai_api.query("SELECT count(*) FROM podcasts WHERE title = 'Foghorns'") == [(1,)]

    user = {"user_id": "foghorn-fan", "listening_history": "foghorns"}
    assert openai_api.post("/api/update_user_history", user).status_code == 200
    like = {"user_id": "foghorn-fan", "podcast_id": first.json()["id"], "event": "like"}
    stored = openai_api.post("/api/feedback", like, headers={"Idempotency-Key": "lost-like"})
    openai_api.query("DELETE FROM idempotency_keys WHERE key = 'lost-like'")
    again = openai_api.post("/api/feedback", like, headers={"Idempotency-Key": "lost-like"})
    assert (stored.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == stored.json()["id"]
    assert openai_api.query("SELECT count(*) FROM feedback_events WHERE user_id = 'foghorn-fan'") == [(1,)]
