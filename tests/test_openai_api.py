"""End to end on the `openai` provider: the runner talks to the fake OpenAI server over HTTP."""

from __future__ import annotations

import uuid

import pytest

from recommender.model import reasons
from tests.conftest import FAKE_API_KEY, Api, wait_for, wait_for_model
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = pytest.mark.service  # over HTTP, against local_runner.py in a subprocess

TOPICS = {
    "astronomy": "telescope galaxy nebula orbit planets stars astronomy cosmos",
    "baking": "flour yeast dough oven bread baking crust knead",
    "sailing": "boat wind sails harbour sailing knots tide mast",
}


def add(api: Api, topic: str, n: int, **extra) -> dict:
    words = TOPICS[topic]
    body = {
        "external_id": f"{topic}-{n}-{uuid.uuid4().hex[:6]}",
        "title": f"{topic.title()} hour {n}",
        "transcript": f"Today we talk {words}. More {words} for episode {n}.",
        "category": topic,
        **extra,
    }
    response = api.post("/api/add_podcast", body)
    assert response.status_code in {201, 202}, response.text
    return response.json()


@pytest.fixture(scope="module")
def catalog(openai_api: Api, fake_openai: FakeOpenAIServer) -> dict[str, list[int]]:
    fake_openai.reset()
    return {topic: [add(openai_api, topic, n)["id"] for n in range(4)] for topic in TOPICS}


def new_user(api: Api, history: str) -> str:
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    response = api.post("/api/update_user_history", {"user_id": user_id, "listening_history": history})
    assert response.status_code == 200, response.text
    return user_id


def test_add_podcast_uses_one_summary_and_one_embedding_call(openai_api: Api, ai: FakeOpenAIServer):
    podcast = add(openai_api, "sailing", 99)
    assert podcast["status"] == "ready"
    assert podcast["summary"].startswith("Summary:")
    assert (ai.chat_requests, ai.embedding_requests) == (1, 1)


def test_recommend_writes_all_reasons_with_one_llm_call(openai_api: Api, catalog, ai: FakeOpenAIServer):
    user_id = new_user(openai_api, "I love astronomy, telescopes and galaxy orbits")
    ai.reset()
    params = {"user_id": user_id, "limit": 4, "wait_seconds": 5}
    response = openai_api.get("/api/recommend_podcasts", params=params)
    items = response.json()["recommendations"]
    assert len(items) == 4
    similar = {i["podcast_id"] for i in items if i["strategy"] == "similar"}  # not the exploration slot
    assert len(similar) >= 3 and similar <= set(catalog["astronomy"])
    assert [i["reason"] for i in items] == [f"Picked for you: {i['title']}" for i in items]
    assert (ai.chat_requests, ai.embedding_requests) == (1, 0)
    stored = openai_api.query(
        "SELECT reason FROM suggested_podcasts WHERE id = ANY(%s) ORDER BY rank",
        ([i["suggestion_id"] for i in items],),
    )
    assert [r[0] for r in stored] == [i["reason"] for i in items]


def test_recommend_answers_with_evidence_when_the_llm_fails(openai_api: Api, catalog, ai: FakeOpenAIServer):
    user_id = new_user(openai_api, "baking bread with yeast and dough")
    ai.fail_next = 100
    params = {"user_id": user_id, "limit": 3, "wait_seconds": 5}
    response = openai_api.get("/api/recommend_podcasts", params=params)
    assert response.status_code == 200, response.text
    items = response.json()["recommendations"]
    assert len(items) == 3
    assert all(i["reason"] == reasons.sentence(i["evidence"], i["podcast_id"]) for i in items)
    assert {i["reason_source"] for i in items} == {"fallback"}
    assert ai.failed_requests == 3  # one call and its two retries, never one call per item
    assert openai_api.query("SELECT count(*) FROM suggested_podcasts WHERE user_id = %s", (user_id,)) == [
        (3,)
    ]


def test_ai_outage_leaves_podcast_pending_then_the_worker_enriches_it(
    openai_api: Api, catalog, ai: FakeOpenAIServer
):
    user_id = new_user(openai_api, "sailing boats, wind and tide")
    ai.fail_next = 1000
    pending = add(openai_api, "sailing", 7, title="Sailing into the storm")
    assert pending["status"] == "pending"
    assert pending["summary"] is None
    [(status, attempts, error)] = openai_api.query(
        "SELECT status, enrich_attempts, last_error FROM podcasts WHERE id = %s", (pending["id"],)
    )
    assert (status, attempts) == ("pending", 1) and error
    items = openai_api.get("/api/recommend_podcasts", params={"user_id": user_id, "limit": 50}).json()
    assert pending["id"] not in {i["podcast_id"] for i in items["recommendations"]}
    ai.fail_next = 0
    assert wait_for(
        lambda: (
            openai_api.query("SELECT status FROM podcasts WHERE id = %s", (pending["id"],)) == [("ready",)]
        )
    ), openai_api.log()[-3000:]
    health = openai_api.get("/api/health").json()
    assert health["podcasts"]["pending"] == 0


def test_history_is_kept_during_an_outage_and_embedded_later(openai_api: Api, catalog, ai: FakeOpenAIServer):
    ai.fail_next = 1000
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    response = openai_api.post(
        "/api/update_user_history", {"user_id": user_id, "listening_history": "baking bread"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["profile_status"] == "pending"
    ai.fail_next = 0
    assert wait_for(
        lambda: (
            openai_api.query("SELECT embedding IS NOT NULL FROM users WHERE id = %s", (user_id,)) == [(True,)]
        )
    )
    items = openai_api.get("/api/recommend_podcasts", params={"user_id": user_id, "limit": 2}).json()
    assert {i["category"] for i in items["recommendations"] if i["strategy"] == "similar"} == {"baking"}


def test_cold_start_user_gets_popular_episodes(openai_api: Api, catalog, ai: FakeOpenAIServer):
    fans = [new_user(openai_api, "sailing boats") for _ in range(3)]
    favourite = catalog["baking"][2]
    for fan in fans:
        response = openai_api.post(
            "/api/feedback", {"user_id": fan, "podcast_id": favourite, "event": "like"}
        )
        assert response.status_code == 201, response.text
    wait_for_model(openai_api)
    ai.fail_next = 1000  # the history cannot be embedded: the user has no vector at all
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    openai_api.post("/api/update_user_history", {"user_id": user_id, "listening_history": "anything"})
    response = openai_api.get("/api/recommend_podcasts", params={"user_id": user_id, "limit": 3})
    ai.fail_next = 0
    assert response.status_code == 200, response.text
    items = response.json()["recommendations"]
    assert len(items) == 3
    assert items[0]["podcast_id"] == favourite
    assert all(i["strategy"] == "popular" and i["similarity"] is None for i in items)
    assert openai_api.query("SELECT count(*) FROM suggested_podcasts WHERE user_id = %s", (user_id,)) == [
        (3,)
    ]


def test_the_api_key_never_reaches_logs_or_responses(openai_api: Api, catalog, ai: FakeOpenAIServer):
    ai.fail_next = 3
    bodies = [
        openai_api.get("/api/health").text,
        openai_api.post("/api/add_podcast", {"title": "t", "transcript": "key leak check"}).text,
        openai_api.post("/api/add_podcast", content=b"{").text,
    ]
    ai.fail_next = 0
    for body in bodies:
        assert FAKE_API_KEY not in body
        assert "Traceback" not in body
    assert FAKE_API_KEY not in openai_api.log()
