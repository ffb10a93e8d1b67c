"""Reasons written ahead (service/page_writer.py) over HTTP: a prepared page makes no LLM call, a page whose
preparation became invalid still answers at once, waiting is the caller's choice, and the LLM is
spent only on listeners who come back. The fake OpenAI server counts the calls."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.conftest import Api, user_in, wait_for
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = pytest.mark.service  # over HTTP, against local_runner.py in a subprocess

TOPICS = {
    "kites": "Kites, wind and the people who fly them over beaches and hills.",
    "bread": "Sourdough bread, starters, flour and the bakers who wake before dawn.",
}


SETTINGS = {"PREPARE_DELAY_SECONDS": "0.2"}


@pytest.fixture(scope="module")
def api(api: Api) -> Api:
    """The module's service (conftest's `api`) with 8 episodes on each topic."""
    for topic, text in TOPICS.items():
        for n in range(8):
            body = {"title": f"{topic.title()} {n}", "transcript": f"{text} Part {n}.", "category": topic}
            assert api.post("/api/add_podcast", body).status_code == 201
    return api


@pytest.fixture
def ai(fresh_fake: FakeOpenAIServer) -> FakeOpenAIServer:
    return fresh_fake


def new_listener(api: Api, history: str = "I love kites and windy beaches") -> str:
    user_id = user_in("loop")
    body = {"user_id": user_id, "listening_history": history}
    assert api.post("/api/update_user_history", body).status_code == 200
    return user_id


def answer(api: Api, user_id: str, **params) -> dict:
    response = api.get("/api/recommend_podcasts", params={"user_id": user_id, "limit": 5, **params})
    assert response.status_code == 200, response.text
    return response.json()


def page(api: Api, user_id: str, **params) -> tuple[list[dict], float]:
    started = time.perf_counter()
    items = answer(api, user_id, **params)["recommendations"]
    return items, time.perf_counter() - started


def prepared(api: Api, user_id: str) -> bool:
    """Nothing is queued for the listener and the writer is done with them."""
    return not api.query("SELECT 1 FROM pages_due WHERE user_id = %s", (user_id,))


def stored_page(api: Api, user_id: str) -> list[int]:
    """The episodes of the page prepared for the listener, once the writer stored it."""
    sql = "SELECT items FROM prepared_pages WHERE user_id = %s"
    assert wait_for(lambda: api.query(sql, (user_id,))), api.log()
    [(items,)] = api.query(sql, (user_id,))
    return [item["podcast_id"] for item in items]


def test_a_page_written_ahead_is_served_without_an_llm_call(api: Api, ai: FakeOpenAIServer):
    user_id = new_listener(api)  # setting up a history queues the first page
    prepared_ids = stored_page(api, user_id)
    assert ai.chat_requests == 1  # the whole page in one call, ahead of the request
    ai.reset()
    served = answer(api, user_id)
    items = served["recommendations"]
    assert ai.chat_requests == 0
    assert served["prepared"] and [i["podcast_id"] for i in items] == prepared_ids  # served as stored
    assert not api.query("SELECT 1 FROM prepared_pages WHERE user_id = %s", (user_id,))  # taken
    assert len(items) == 5 and {i["reason_source"] for i in items} == {"cached"}
    assert all(i["reason"].startswith("Picked for you") for i in items)  # the fake LLM's words
    assert api.query("SELECT count(*) FROM ai_calls WHERE purpose = 'reasons'")[0][0] >= 1


def test_waiting_for_reasons_a_page_prepared_with_all_of_them_serves_it_once(api: Api, ai: FakeOpenAIServer):
    """`wait_seconds` on a page that needs no wait: served as prepared, stored exactly once."""
    user_id = new_listener(api)
    prepared_ids = stored_page(api, user_id)
    ai.reset()
    served = answer(api, user_id, wait_seconds=1)
    assert served["prepared"] and [i["podcast_id"] for i in served["recommendations"]] == prepared_ids
    assert ai.chat_requests == 0
    stored = api.query(
        "SELECT podcast_id FROM suggested_podcasts WHERE user_id = %s ORDER BY rank", (user_id,)
    )
    assert [pid for (pid,) in stored] == prepared_ids


def test_a_page_whose_reasons_are_all_written_is_prepared_without_an_llm_call(api: Api, ai: FakeOpenAIServer):
    user_id = new_listener(api)
    prepared_ids = stored_page(api, user_id)
    api.query("DELETE FROM prepared_pages WHERE user_id = %s", (user_id,))
    api.query("INSERT INTO pages_due (user_id, due_at, page_size) VALUES (%s, now(), 5)", (user_id,))
    ai.reset()
    other = new_listener(api, "sourdough bread and bakers")  # wakes the writer; their page costs one call
    stored_page(api, other)
    assert stored_page(api, user_id) == prepared_ids  # the same page again: its reasons are all written
    assert ai.chat_requests == 1
    served = answer(api, user_id)
    assert served["prepared"] and {i["reason_source"] for i in served["recommendations"]} == {"cached"}


def test_the_next_page_is_prepared_after_each_page(api: Api, ai: FakeOpenAIServer):
    user_id = new_listener(api)
    stored_page(api, user_id)
    first, _ = page(api, user_id)
    stored_page(api, user_id)  # a returning listener: their next page is prepared
    ai.reset()
    served = answer(api, user_id)
    second = served["recommendations"]
    assert served["prepared"]
    assert not {i["podcast_id"] for i in second} & {i["podcast_id"] for i in first}
    assert {i["reason_source"] for i in second} == {"cached"} and ai.chat_requests == 0


def test_a_prepared_page_is_not_served_once_the_listener_changed(api: Api, ai: FakeOpenAIServer):
    user_id = new_listener(api)
    disliked, *_ = stored_page(api, user_id)
    body = {"user_id": user_id, "podcast_id": disliked, "event": "dislike"}
    assert api.post("/api/feedback", body).status_code == 201
    served = answer(api, user_id)
    assert not served["prepared"]
    assert disliked not in {i["podcast_id"] for i in served["recommendations"]}


def test_a_prepared_page_is_not_served_once_one_of_its_episodes_is_gone(api: Api, ai: FakeOpenAIServer):
    user_id = new_listener(api, "sourdough bread and bakers")
    gone, *_ = stored_page(api, user_id)
    api.query("UPDATE podcasts SET status = 'pending' WHERE id = %s", (gone,))  # its text is changing
    try:
        served = answer(api, user_id)
    finally:
        api.query("UPDATE podcasts SET status = 'ready' WHERE id = %s", (gone,))
    assert not served["prepared"]
    assert gone not in {i["podcast_id"] for i in served["recommendations"]}


def test_a_prepared_page_is_served_only_at_its_size(api: Api, ai: FakeOpenAIServer):
    user_id = new_listener(api)
    stored_page(api, user_id)
    served = answer(api, user_id, limit=3)
    assert not served["prepared"] and len(served["recommendations"]) == 3


def test_an_invalidated_page_still_answers_at_once(api: Api, ai: FakeOpenAIServer):
    user_id = new_listener(api)
    stored_page(api, user_id)
    items, _ = page(api, user_id)
    ai.chat_delay_seconds = 5.0  # the LLM is slow from now on
    for item in items[:2]:  # the listener changes their mind: the prepared page no longer holds
        body = {"user_id": user_id, "podcast_id": item["podcast_id"], "suggestion_id": item["suggestion_id"]}
        assert api.post("/api/feedback", {**body, "event": "dislike"}).status_code == 201
    following, seconds = page(api, user_id)
    assert seconds < 2.0  # not waiting on the 5 s LLM
    assert len(following) == 5
    fallback = [i for i in following if i["reason_source"] == "fallback"]
    assert all(i["reason"] for i in following) and fallback  # evidence sentences where none is written


def test_a_caller_may_wait_for_the_llm(api: Api, ai: FakeOpenAIServer):
    user_id = new_listener(api, "bread and sourdough starters")
    api.query("DELETE FROM pages_due WHERE user_id = %s", (user_id,))  # nothing prepared for them
    api.query("DELETE FROM reasons WHERE user_id = %s", (user_id,))
    ai.reset()
    items, _ = page(api, user_id, wait_seconds=5)
    assert {i["reason_source"] for i in items} == {"generated"}
    assert ai.chat_requests == 1


def test_waiting_is_bounded(api: Api, ai: FakeOpenAIServer):
    user_id = new_listener(api, "bread")
    api.query("DELETE FROM pages_due WHERE user_id = %s", (user_id,))
    api.query("DELETE FROM reasons WHERE user_id = %s", (user_id,))
    ai.chat_delay_seconds = 5.0
    items, seconds = page(api, user_id, wait_seconds=0.5)
    assert seconds < 3.0
    assert {i["reason_source"] for i in items} == {"fallback"}


def test_a_first_page_commits_no_llm_call_to_a_second(api: Api, ai: FakeOpenAIServer):
    user_id = f"walk-in-{uuid.uuid4().hex[:8]}"  # a listener made without the API's history update
    api.query("INSERT INTO users (id) VALUES (%s)", (user_id,))
    page(api, user_id)
    time.sleep(1.0)  # past PREPARE_DELAY_SECONDS
    assert prepared(api, user_id)
    assert ai.chat_requests == 0
    page(api, user_id)  # they came back: now their next page is prepared
    assert wait_for(lambda: ai.chat_requests == 1, timeout=10)


def test_wait_seconds_is_validated(api: Api):
    response = api.get("/api/recommend_podcasts", params={"user_id": "someone", "wait_seconds": "11"})
    assert response.status_code == 400
    assert "wait_seconds" in response.json()["error"]["message"]


def test_a_listener_with_nothing_to_go_on_gets_popular_pages_written_ahead(api: Api, ai: FakeOpenAIServer):
    user_id = f"walk-in-{uuid.uuid4().hex[:8]}"  # no history, no events: popular episodes
    api.query("INSERT INTO users (id) VALUES (%s)", (user_id,))
    page(api, user_id)
    page(api, user_id)  # a returning listener: the next page is prepared
    stored_page(api, user_id)
    items, _ = page(api, user_id)
    assert {i["strategy"] for i in items} == {"popular"}
    assert {i["reason_source"] for i in items} == {"cached"}
