"""End to end through the local runner over real HTTP, offline `local` provider, real Postgres."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.service  # over HTTP, against local_runner.py in a subprocess


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def recommend(api: Api, user_id: str, **params) -> list[dict]:
    response = api.get("/api/recommend_podcasts", params={"user_id": user_id, **params})
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == user_id
    return response.json()["recommendations"]


def test_health_reports_database_migrations_and_model(local_api: Api):
    body = local_api.get("/api/health").json()
    assert body["status"] == "ok"
    assert body["database"]["reachable"] is True
    assert body["database"]["migrations"][0] == "001_initial"
    assert body["ai"] == {
        "provider": "local",
        "embedding_model": "sentence-transformers/all-MiniLM-L6-v2",
        "dimensions": 384,
        "chat_model": "extractive",
        "status": "ok",  # offline: no AI service that could fail
    }
    assert body["podcasts"]["ready"] >= 48


def test_add_podcast_summarizes_embeds_and_upserts_by_external_id(local_api: Api):
    external_id = unique("ext")
    body = {
        "external_id": external_id,
        "title": "Glaciers in Retreat",
        "description": "How ice sheets respond to warming.",
        "transcript": "Glaciers are rivers of ice. They flow slowly downhill under their own weight. "
        "Satellites now measure how fast the ice sheets of Greenland lose mass every summer. "
        "Meltwater lubricates the base of the glacier and speeds it up.",
        "category": "Science",
        "duration_seconds": 1200,
        "published_at": "2026-03-01T10:00:00Z",
    }
    first = local_api.post("/api/add_podcast", body)
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["status"] == "ready"
    assert created["summary"] and "ice" in created["summary"].lower()
    assert created["category"] == "science"
    assert "transcript" not in created

    again = local_api.post("/api/add_podcast", {**body, "title": "Glaciers in Retreat (updated)"})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == created["id"]
    assert again.json()["title"] == "Glaciers in Retreat (updated)"

    rows = local_api.query(
        "SELECT count(*), bool_and(embedding IS NOT NULL), max(vector_dims(embedding))"
        " FROM podcasts WHERE external_id = %s",
        (external_id,),
    )
    assert rows == [(1, True, 384)]


def test_unchanged_repost_keeps_the_stored_enrichment(local_api: Api):
    body = {"external_id": unique("ext"), "title": "Same text", "transcript": "Nothing changes here at all."}
    first = local_api.post("/api/add_podcast", body).json()
    second = local_api.post("/api/add_podcast", body)
    assert second.status_code == 200
    assert second.json()["updated_at"] >= first["updated_at"]
    assert second.json()["summary"] == first["summary"]


def test_history_lover_gets_history_and_every_suggestion_is_written_back(local_api: Api):
    user_id = "sample-margaret"
    listened = {
        row[0]
        for row in local_api.query("SELECT podcast_id FROM user_listens WHERE user_id = %s", (user_id,))
    }
    items = recommend(local_api, user_id, limit=3)
    assert len(items) == 3
    assert [i["rank"] for i in items] == [1, 2, 3]
    assert Counter(i["category"] for i in items)["history"] >= 2
    assert not listened & {i["podcast_id"] for i in items}
    assert all(-1 <= i["similarity"] <= 1 for i in items)
    for item in items:
        assert set(item) >= {
            "suggestion_id",
            "podcast_id",
            "title",
            "summary",
            "reason",
            "similarity",
            "rank",
        }
        assert item["reason"]
        [row] = local_api.query(
            "SELECT user_id, podcast_id, similarity, rank, reason, suggested_at IS NOT NULL"
            " FROM suggested_podcasts WHERE id = %s",
            (item["suggestion_id"],),
        )
        assert row[:2] == (user_id, item["podcast_id"])
        assert row[2] == pytest.approx(item["similarity"], abs=1e-4)
        assert row[3:] == (item["rank"], item["reason"], True)


@pytest.mark.parametrize(
    ("user_id", "topics"),
    [
        ("sample-rosa", {"true-crime"}),
        ("sample-sam", {"cooking"}),
        ("sample-devon", {"science", "technology"}),  # black holes, quantum physics, AI models
    ],
)
def test_recommendations_follow_the_users_topic(local_api: Api, user_id: str, topics: set[str]):
    items = recommend(local_api, user_id, limit=3, category=None)
    assert items[0]["category"] in topics


def test_new_user_from_free_text_gets_matching_topic(local_api: Api):
    user_id = unique("user")
    response = local_api.post(
        "/api/update_user_history",
        {"user_id": user_id, "listening_history": "I bake sourdough bread and love fresh pasta recipes."},
    )
    assert response.status_code == 200, response.text
    assert response.json()["user_id"] == user_id
    assert response.json()["profile_status"] == "ready"
    assert response.json()["created"] is True
    items = recommend(local_api, user_id, limit=3)
    assert Counter(i["category"] for i in items)["cooking"] >= 2


def test_listened_episodes_are_never_recommended(local_api: Api):
    user_id = unique("user")
    cooking = [pid for ext, pid in local_api.sample_ids.items() if "cooking" in ext]
    response = local_api.post(
        "/api/update_user_history", {"user_id": user_id, "listened_podcast_ids": cooking[:5]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["listened_count"] == 5
    items = recommend(local_api, user_id, limit=50)
    assert not set(cooking[:5]) & {i["podcast_id"] for i in items}
    similar = [i["podcast_id"] for i in items if i["strategy"] == "similar"]
    assert similar[0] == cooking[5]  # the one cooking episode left is the closest


def test_recently_suggested_are_not_repeated_while_others_remain(local_api: Api):
    user_id = unique("user")
    local_api.post("/api/update_user_history", {"user_id": user_id, "listening_history": "Roman history"})
    first = {i["podcast_id"] for i in recommend(local_api, user_id, limit=5)}
    second = {i["podcast_id"] for i in recommend(local_api, user_id, limit=5)}
    assert not first & second
    total = local_api.query("SELECT count(*) FROM podcasts WHERE status = 'ready'")[0][0]
    everything = {i["podcast_id"] for i in recommend(local_api, user_id, limit=50)}
    assert len(everything) == min(50, total)  # when nothing fresh is left, recent ones fill the page


def test_category_filter(local_api: Api):
    items = recommend(local_api, "sample-margaret", limit=4, category="cooking")
    assert len(items) == 4
    assert {i["category"] for i in items} == {"cooking"}


def test_history_update_adds_listens_and_replaces_text(local_api: Api):
    user_id = unique("user")
    ids = list(local_api.sample_ids.values())
    local_api.post(
        "/api/update_user_history", {"user_id": user_id, "listening_history": "jazz", "name": "Ann"}
    )
    response = local_api.post(
        "/api/update_user_history", {"user_id": user_id, "listened_podcast_ids": ids[:2]}
    )
    body = response.json()
    assert (body["name"], body["has_history"], body["listened_count"], body["created"]) == (
        "Ann",
        True,
        2,
        False,
    )
    assert "listening_history" not in body  # whoever holds a key must not read a history back
    response = local_api.post(
        "/api/update_user_history",
        {"user_id": user_id, "listening_history": "opera", "listened_podcast_ids": ids[1:3]},
    )
    assert response.json()["listened_count"] == 3
    assert local_api.query("SELECT listening_history FROM users WHERE id = %s", (user_id,)) == [("opera",)]


# --- bad input: a clear 4xx JSON error, nothing written -------------------------------------


def counts(api: Api) -> tuple[int, int, int, int]:
    return api.query(
        "SELECT (SELECT count(*) FROM podcasts), (SELECT count(*) FROM users),"
        " (SELECT count(*) FROM user_listens), (SELECT count(*) FROM suggested_podcasts)"
    )[0]


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"[]", "invalid_request"),
        (b'{"transcript": "no title"}', "invalid_request"),
        (b'{"title": "t", "transcript": "x", "duration_seconds": "600"}', "invalid_request"),
        (b'{"title": "t", "transcript": "x", "duration_seconds": -1}', "invalid_request"),
        (b'{"title": "t", "transcript": "x", "published_at": "yesterday"}', "invalid_request"),
        (b'{"title": "t", "transcript": "x", "colour": "red"}', "invalid_request"),
        (b'{"title": "   ", "transcript": "x"}', "invalid_request"),
    ],
)
def test_add_podcast_rejects_bad_input(local_api: Api, body: bytes, code: str):
    before = counts(local_api)
    json_body = {"content-type": "application/json"}
    assert_error(local_api.post("/api/add_podcast", content=body, headers=json_body), 400, code)
    assert counts(local_api) == before


@pytest.mark.parametrize(
    "body",
    [
        {"listening_history": "no user id"},
        {"user_id": 42, "listening_history": "wrong type"},
        {"user_id": "u"},
        {"user_id": "u", "listened_podcast_ids": ["1"]},
        {"user_id": "u", "listened_podcast_ids": "1"},
        {"user_id": "", "listening_history": "empty id"},
    ],
)
def test_update_user_history_rejects_bad_input(local_api: Api, body: dict):
    before = counts(local_api)
    assert_error(local_api.post("/api/update_user_history", body), 400, "invalid_request")
    assert counts(local_api) == before


def test_unknown_listened_podcast_is_404_and_creates_nothing(local_api: Api):
    user_id = unique("user")
    before = counts(local_api)
    response = local_api.post(
        "/api/update_user_history",
        {"user_id": user_id, "listening_history": "anything", "listened_podcast_ids": [1, 999999999]},
    )
    assert_error(response, 404, "podcast_not_found")
    assert "999999999" in response.json()["error"]["message"]
    assert counts(local_api) == before


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({}, 400, "invalid_request"),
        ({"user_id": "nobody-at-all"}, 404, "user_not_found"),
        ({"user_id": "sample-sam", "limit": "0"}, 400, "invalid_request"),
        ({"user_id": "sample-sam", "limit": "51"}, 400, "invalid_request"),
        ({"user_id": "sample-sam", "limit": "five"}, 400, "invalid_request"),
    ],
)
def test_recommend_rejects_bad_queries(local_api: Api, params: dict, status: int, code: str):
    before = counts(local_api)
    assert_error(local_api.get("/api/recommend_podcasts", params=params), status, code)
    assert counts(local_api) == before


def test_oversize_body_is_413(local_api: Api):
    before = counts(local_api)
    body = {"title": "big", "transcript": "word " * 2_100_000}  # over the 10 MB default
    assert_error(local_api.post("/api/add_podcast", body), 413, "body_too_large")
    assert counts(local_api) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/add_podcast"), ("PUT", "/api/update_user_history"), ("POST", "/api/recommend_podcasts")],
)
def test_other_methods_are_405(local_api: Api, method: str, path: str):
    response = local_api.client.request(method, path)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] in {"GET", "POST"}


def test_unknown_route_is_json_404(local_api: Api):
    assert_error(local_api.get("/api/nope"), 404, "not_found")
