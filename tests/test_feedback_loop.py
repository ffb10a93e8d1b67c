"""The feedback loop over HTTP on the real database: capture, learning, interest profiles,
variants and analytics (reasons written ahead: test_written_ahead.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest

from tests.conftest import ROOT, Api, sample_service, user_in, wait_for
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = pytest.mark.service  # over HTTP, against local_runner.py in a subprocess


def create_user(api: Api, user_id: str, history: str) -> None:
    response = api.post("/api/update_user_history", {"user_id": user_id, "listening_history": history})
    assert response.status_code == 200, response.text


def page(api: Api, user_id: str, limit: int = 5) -> list[dict]:
    response = api.get("/api/recommend_podcasts", params={"user_id": user_id, "limit": limit})
    assert response.status_code == 200, response.text
    return response.json()["recommendations"]


def send(api: Api, user_id: str, item: dict, event: str, **extra) -> httpx.Response:
    body = {"user_id": user_id, "podcast_id": item["podcast_id"], "suggestion_id": item["suggestion_id"]}
    return api.post("/api/feedback", {**body, "event": event, **extra})


# --- capture ------------------------------------------------------------------------------


def test_feedback_is_stored_and_attributed_to_its_suggestion(local_api: Api):
    user_id = user_in("loop")
    create_user(local_api, user_id, "history of empires")
    item = page(local_api, user_id, 1)[0]
    response = send(local_api, user_id, item, "listen", value=0.4)
    assert response.status_code == 201, response.text
    event = response.json()
    assert (event["event"], event["suggestion_id"], event["value"]) == ("listen", item["suggestion_id"], 0.4)
    assert event["weight"] == pytest.approx(0.24)
    rows = local_api.query("SELECT suggestion_id, event FROM feedback_events WHERE id = %s", (event["id"],))
    assert rows == [(item["suggestion_id"], "listen")]


def test_repeated_event_id_is_stored_once(local_api: Api):
    user_id = user_in("loop")
    create_user(local_api, user_id, "cooking")
    item = page(local_api, user_id, 1)[0]
    first = send(local_api, user_id, item, "like", event_id="evt-1")
    again = send(local_api, user_id, item, "like", event_id="evt-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert local_api.query("SELECT feedback_count FROM users WHERE id = %s", (user_id,)) == [(1,)]


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"user_id": "nobody-here"}, 404, "user_not_found"),
        ({"podcast_id": 987654321}, 404, "podcast_not_found"),
        ({"event": "love"}, 400, "invalid_request"),
        ({"event": "listen", "value": 1.5}, 400, "invalid_request"),
        ({"event": "rate"}, 400, "invalid_request"),
        ({"podcast_id": "12"}, 400, "invalid_request"),
    ],
)
def test_bad_feedback_is_rejected_and_nothing_is_written(
    local_api: Api, change: dict, status: int, code: str
):
    user_id = user_in("loop")
    create_user(local_api, user_id, "science")
    item = page(local_api, user_id, 1)[0]
    body = {"user_id": user_id, "podcast_id": item["podcast_id"], "event": "like", **change}
    response = local_api.post("/api/feedback", body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert local_api.query("SELECT count(*) FROM feedback_events WHERE user_id = %s", (user_id,)) == [(0,)]


def test_suggestion_of_another_user_or_podcast_is_rejected(local_api: Api):
    alice, bob = user_in("loop"), user_in("loop")
    create_user(local_api, alice, "science")
    create_user(local_api, bob, "science")
    a, b = page(local_api, alice, 2)
    theirs = page(local_api, bob, 1)[0]
    for body in (
        {"user_id": alice, "podcast_id": a["podcast_id"], "suggestion_id": theirs["suggestion_id"]},
        {"user_id": alice, "podcast_id": b["podcast_id"], "suggestion_id": a["suggestion_id"]},
    ):
        response = local_api.post("/api/feedback", {**body, "event": "click"})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "suggestion_mismatch"
    assert local_api.query("SELECT count(*) FROM feedback_events WHERE user_id = %s", (alice,)) == [(0,)]


def test_fifty_concurrent_events_for_one_user_lose_nothing(local_api: Api):
    user_id = user_in("loop")
    create_user(local_api, user_id, "business and money")
    items = page(local_api, user_id, 5)

    def post(n: int) -> int:
        item = items[n % len(items)]
        body = {"user_id": user_id, "podcast_id": item["podcast_id"], "event": "click", "event_id": f"c{n}"}
        with httpx.Client(base_url=local_api.base_url, timeout=60) as client:
            return client.post("/api/feedback", json=body).status_code

    with ThreadPoolExecutor(max_workers=25) as pool:
        statuses = list(pool.map(post, range(50)))
    assert statuses == [201] * 50
    assert local_api.query("SELECT count(*) FROM feedback_events WHERE user_id = %s", (user_id,)) == [(50,)]
    assert local_api.query("SELECT feedback_count FROM users WHERE id = %s", (user_id,)) == [(50,)]


# --- learning -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def learning_api(create_database, tmp_path_factory) -> Iterator[Api]:
    """The sample catalogue with no other test's listeners: what a listener's pages learn comes
    from their own feedback, not from what other tests' listeners happened to like together."""
    logs = tmp_path_factory.mktemp("logs")
    with sample_service(create_database("learning"), logs / "learning.log") as api:
        yield api


def test_disliked_topic_stops_and_liked_topic_grows(learning_api: Api):
    user_id = user_in("loop")
    create_user(
        learning_api, user_id, "Detectives cracking cold cases, and cooking dinner with recipes from scratch."
    )
    categories = Counter()
    for _ in range(2):  # two pages of feedback: dislike true crime, like cooking
        for item in page(learning_api, user_id, 5):
            categories[item["category"]] += 1
            if item["category"] == "true-crime":
                assert send(learning_api, user_id, item, "dislike").status_code == 201
            elif item["category"] == "cooking":
                assert send(learning_api, user_id, item, "like").status_code == 201
    assert categories["true-crime"] >= 2, categories  # the history asked for both topics
    later = [item["category"] for _ in range(2) for item in page(learning_api, user_id, 4)]
    assert "true-crime" not in later, later
    sql = "SELECT podcast_id FROM feedback_events WHERE user_id = %s AND event = 'dislike'"
    disliked = {row[0] for row in learning_api.query(sql, (user_id,))}
    assert disliked and not disliked & {i["podcast_id"] for i in page(learning_api, user_id, 50)}


def test_likes_bring_more_of_a_topic_than_history_alone(learning_api: Api):
    learner, control = user_in("loop"), user_in("loop")
    history = "I enjoy learning about how things work, from the body to the stars."
    create_user(learning_api, learner, history)
    create_user(learning_api, control, history)
    cooking = [pid for ext, pid in learning_api.sample_ids.items() if "cooking" in ext]
    for pid in cooking[:3]:
        response = learning_api.post(
            "/api/feedback", {"user_id": learner, "podcast_id": pid, "event": "like"}
        )
        assert response.status_code == 201
    learned = Counter(i["category"] for i in page(learning_api, learner, 5))
    baseline = Counter(i["category"] for i in page(learning_api, control, 5))
    assert learned["cooking"] >= 2 and learned["cooking"] > baseline["cooking"], (learned, baseline)


def test_completed_episodes_are_not_recommended_again(local_api: Api):
    user_id = user_in("loop")
    create_user(local_api, user_id, "sleep, fitness and health")
    item = page(local_api, user_id, 1)[0]
    assert send(local_api, user_id, item, "complete").status_code == 201
    assert item["podcast_id"] not in {i["podcast_id"] for i in page(local_api, user_id, 50)}


def test_enough_feedback_writes_an_embedded_interest_profile(local_api: Api):
    user_id = user_in("loop")
    create_user(local_api, user_id, "astronomy and physics")
    for item in page(local_api, user_id, 5):
        assert send(local_api, user_id, item, "like").status_code == 201

    def written() -> bool:
        rows = local_api.query(
            "SELECT interest_profile, interest_embedding IS NOT NULL, events_since_profile"
            " FROM users WHERE id = %s",
            (user_id,),
        )
        return rows[0][0] is not None and rows[0][1:] == (True, 0)

    assert wait_for(written), local_api.log()[-2000:]
    [(profile,)] = local_api.query("SELECT interest_profile FROM users WHERE id = %s", (user_id,))
    assert profile.startswith("Enjoys")


def test_variant_is_stable_and_stored_on_every_suggestion(local_api: Api):
    for variant in ("loop", "history_only"):
        user_id = user_in(variant)
        create_user(local_api, user_id, "comedy and improv")
        for _ in range(2):
            response = local_api.get("/api/recommend_podcasts", params={"user_id": user_id, "limit": 3})
            assert response.json()["variant"] == variant
        rows = local_api.query(
            "SELECT DISTINCT variant FROM suggested_podcasts WHERE user_id = %s", (user_id,)
        )
        assert rows == [(variant,)]


def test_history_only_variant_ignores_feedback(local_api: Api):
    user_id = user_in("history_only")
    create_user(local_api, user_id, "Roman history and ancient empires")
    before = local_api.query("SELECT history_profile::text FROM users WHERE id = %s", (user_id,))
    cooking = [pid for ext, pid in local_api.sample_ids.items() if "cooking" in ext]
    for pid, event in zip(cooking[:4], ["like", "like", "complete", "complete"], strict=True):
        local_api.post("/api/feedback", {"user_id": user_id, "podcast_id": pid, "event": event})
    assert local_api.query("SELECT history_profile::text FROM users WHERE id = %s", (user_id,)) == before
    assert Counter(i["category"] for i in page(local_api, user_id, 3))["cooking"] == 0


# --- reasons, analytics and export (openai provider, fake server) -------------------------


def test_analytics_reports_the_loop_figures(openai_api: Api, ai: FakeOpenAIServer):
    since = datetime.now(UTC).isoformat()
    for n in range(3):
        body = {
            "external_id": f"an-{n}-{uuid.uuid4().hex[:6]}",
            "title": f"Volcano {n}",
            "transcript": "lava magma",
        }
        openai_api.post("/api/add_podcast", body)
    users = [user_in("loop"), user_in("history_only")]
    pages = {}
    for user_id in users:
        create_user(openai_api, user_id, "volcano lava")
        pages[user_id] = page(openai_api, user_id, 2)
    liked, disliked = pages[users[0]]
    assert send(openai_api, users[0], liked, "like").status_code == 201
    assert send(openai_api, users[0], liked, "complete").status_code == 201
    assert send(openai_api, users[0], disliked, "dislike").status_code == 201
    body = openai_api.get("/api/analytics", params={"since": since}).json()
    assert body["suggestions"] == 4
    assert body["engaged_suggestions"] == 1
    assert body["engagement_rate"] == 0.25
    assert (body["likes"], body["dislikes"]) == (1, 1)
    assert body["events"] == {"like": 1, "complete": 1, "dislike": 1}
    expected_similarity = sum(i["similarity"] for p in pages.values() for i in p) / 4
    assert body["average_similarity"] == pytest.approx(expected_similarity, abs=1e-3)
    by_variant = {v["variant"]: v for v in body["by_variant"]}
    assert by_variant["loop"] | {"average_similarity": None} == {
        "variant": "loop", "suggestions": 2, "average_similarity": None, "engaged_suggestions": 1,
        "engagement_rate": 0.5, "likes": 1, "dislikes": 1,
    }  # fmt: skip
    assert (by_variant["history_only"]["suggestions"], by_variant["history_only"]["engagement_rate"]) == (
        2,
        0,
    )
    assert [d["suggestions"] for d in body["by_day"]] == [4]
    assert {r["rank"]: r["engaged_suggestions"] for r in body["by_rank"]} == {1: 1, 2: 0}
    assert body["llm_calls"]["pages_served"] == 2
    assert body["llm_calls"]["summaries"] >= 1  # this run's batch at least (counted per day)
    assert {r["purpose"] for r in body["llm_calls"]["by_day"]} >= {"summaries"}
    assert body["trending_topics"] == []  # one engaged episode is no topic (tests/test_dashboard.py)


def test_analytics_rejects_a_bad_since(openai_api: Api):
    response = openai_api.get("/api/analytics", params={"since": "last tuesday"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_export_writes_suggestions_with_outcomes_as_jsonl(
    openai_api: Api, fake_openai: FakeOpenAIServer, tmp_path
):
    user_id = user_in("loop")
    create_user(openai_api, user_id, "volcano lava")
    liked, other = page(openai_api, user_id, 2)
    send(openai_api, user_id, liked, "like")
    output = tmp_path / "suggestions.jsonl"
    env = {
        **os.environ,
        "DATABASE_URL": openai_api.dsn,
        "AI_PROVIDER": "openai",
        "OPENAI_BASE_URL": fake_openai.openai_base_url,
        "OPENAI_EMBEDDING_MODEL": "fake-embedding",
        "EMBEDDING_DIMENSIONS": "384",
    }
    subprocess.run(
        [sys.executable, "cli.py", "export-suggestions", "--output", str(output)],
        cwd=ROOT,
        env=env,
        check=True,
    )
    rows = {r["suggestion_id"]: r for r in map(json.loads, output.read_text().splitlines())}
    times = [row["suggested_at"] for row in rows.values()] + [
        e["at"] for r in rows.values() for e in r["events"]
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+[+-]\d\d:\d\d", t) for t in times), times  # one format
    assert rows[liked["suggestion_id"]]["outcome"] == "positive"
    assert rows[liked["suggestion_id"]]["events"][0]["event"] == "like"
    assert rows[other["suggestion_id"]] | {"events": None} == rows[other["suggestion_id"]] | {
        "events": None, "outcome": "none", "user_id": user_id, "variant": "loop",
    }  # fmt: skip
