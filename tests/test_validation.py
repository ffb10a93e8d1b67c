"""Input Postgres cannot store is a clear 4xx over HTTP, and nothing is written: NUL characters,
numbers out of their columns' range, NaN, time-zone offsets and years Postgres rejects, ids that
only look like digits. In a bulk request a bad item fails alone."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.service  # over HTTP, against local_runner.py in a subprocess

NUL = "a\u0000b"
TOO_BIG = 2**63  # one past bigint


def written(api: Api) -> tuple:
    return api.query(
        "SELECT (SELECT count(*) FROM podcasts), (SELECT count(*) FROM users),"
        " (SELECT count(*) FROM user_listens), (SELECT count(*) FROM feedback_events)"
    )[0]


def refused(api: Api, response, status: int = 400, code: str = "invalid_request") -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def episode(**fields) -> dict:
    return {"title": "Tide pools", "transcript": "Anemones and crabs at low tide.", **fields}


def existing_user(api: Api) -> str:
    user_id = f"valid-{uuid.uuid4().hex[:8]}"
    response = api.post("/api/update_user_history", {"user_id": user_id, "listening_history": "the sea"})
    assert response.status_code == 200
    return user_id


@pytest.mark.parametrize(
    "body",
    [
        episode(title=NUL),
        episode(transcript=NUL),
        episode(external_id=NUL),
        episode(description=NUL),
        episode(duration_seconds=2**31),
        episode(published_at="2026-01-01T00:00:00+16:00"),
        episode(published_at="0001-01-01T00:00:00+01:00"),
        episode(published_at="9999-12-31T23:00:00-02:00"),
    ],
)
def test_add_podcast_refuses_what_postgres_cannot_store(local_api: Api, body: dict):
    before = written(local_api)
    refused(local_api, local_api.post("/api/add_podcast", body))
    assert written(local_api) == before


@pytest.mark.parametrize(
    "body",
    [
        {"listening_history": NUL},
        {"name": NUL, "listening_history": "jazz"},
        {"listened_podcast_ids": [TOO_BIG]},
        {"user_id": NUL, "listening_history": "jazz"},
    ],
)
def test_update_user_history_refuses_what_postgres_cannot_store(local_api: Api, body: dict):
    before = written(local_api)
    refused(local_api, local_api.post("/api/update_user_history", {"user_id": "nul-check", **body}))
    assert written(local_api) == before


@pytest.mark.parametrize(
    "extra",
    [{"value": 1e300}, {"event_id": NUL}, {"suggestion_id": TOO_BIG}],
)
def test_feedback_refuses_what_postgres_cannot_store(local_api: Api, extra: dict):
    user_id, podcast_id = existing_user(local_api), min(local_api.sample_ids.values())
    before = written(local_api)
    body = {"user_id": user_id, "podcast_id": podcast_id, "event": "click", **extra}
    refused(local_api, local_api.post("/api/feedback", body))
    assert written(local_api) == before


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_feedback_refuses_numbers_json_cannot_carry(local_api: Api, literal: str):
    user_id, podcast_id = existing_user(local_api), min(local_api.sample_ids.values())
    before = written(local_api)
    body = f'{{"user_id": "{user_id}", "podcast_id": {podcast_id}, "event": "click", "value": {literal}}}'
    response = local_api.post("/api/feedback", content=body, headers={"content-type": "application/json"})
    refused(local_api, response)
    assert written(local_api) == before


def test_a_tiny_value_is_stored_rounded_instead_of_underflowing(local_api: Api):
    user_id, podcast_id = existing_user(local_api), min(local_api.sample_ids.values())
    body = {"user_id": user_id, "podcast_id": podcast_id, "event": "click", "value": 1e-50}
    response = local_api.post("/api/feedback", body)
    assert response.status_code == 201, response.text
    assert response.json()["value"] == 0


@pytest.mark.parametrize(
    "params",
    [
        {"q": "sea", "category": NUL},
        {"q": NUL},
        {"q": "sea", "max_duration_seconds": str(2**31)},
        {"q": "sea", "published_after": "2026-01-01T00:00:00+16:00"},
        {"q": "sea", "published_after": "0001-01-01T00:00:00+01:00"},
    ],
)
def test_search_filters_postgres_cannot_use_are_refused(local_api: Api, params: dict):
    refused(local_api, local_api.get("/api/search", params=params))


@pytest.mark.parametrize("since", ["2026-01-01T00:00:00+16:00", "0001-01-01T00:00:00+01:00"])
def test_analytics_since_postgres_cannot_use_is_refused(local_api: Api, since: str):
    refused(local_api, local_api.get("/api/analytics", params={"since": since}))


def test_recommend_category_with_nul_is_refused(local_api: Api):
    params = {"user_id": "sample-margaret", "category": NUL}
    refused(local_api, local_api.get("/api/recommend_podcasts", params=params))


@pytest.mark.parametrize("podcast_id", ["²", "١٢", str(TOO_BIG), "0"])
def test_route_ids_must_be_ascii_digits_within_bigint(local_api: Api, podcast_id: str):
    refused(local_api, local_api.client.request("PATCH", f"/api/podcasts/{podcast_id}", json={"title": "x"}))


def test_patching_to_another_episodes_external_id_is_a_conflict(local_api: Api):
    tag = uuid.uuid4().hex[:8]
    first = local_api.post("/api/add_podcast", episode(external_id=f"first-{tag}")).json()["id"]
    local_api.post("/api/add_podcast", episode(external_id=f"second-{tag}"))
    response = local_api.client.request(
        "PATCH", f"/api/podcasts/{first}", json={"external_id": f"second-{tag}"}
    )
    refused(local_api, response, 409, "conflict")
    assert "external_id" in response.json()["error"]["message"]
    assert local_api.query("SELECT external_id FROM podcasts WHERE id = %s", (first,)) == [(f"first-{tag}",)]


def test_a_nul_item_fails_alone_in_a_bulk_add(local_api: Api):
    tag = uuid.uuid4().hex[:8]
    items = [episode(external_id=f"good-{tag}"), episode(title=NUL), episode(external_id=f"also-{tag}")]
    before = written(local_api)[0]
    results = local_api.post("/api/add_podcasts", items).json()["results"]
    assert [("id" in r, "error" in r) for r in results] == [(True, False), (False, True), (True, False)]
    assert results[1]["error"]["code"] == "invalid_request"
    assert written(local_api)[0] == before + 2


def test_a_nul_item_fails_alone_in_bulk_feedback(local_api: Api):
    user_id, podcast_id = existing_user(local_api), min(local_api.sample_ids.values())
    event = {"user_id": user_id, "podcast_id": podcast_id, "event": "click"}
    items = [{**event, "event_id": "ok-1"}, {**event, "event_id": NUL}, {**event, "value": 1e300}]
    response = local_api.post("/api/feedback", items)
    assert response.status_code == 200, response.text
    assert [("id" in r, "error" in r) for r in response.json()["results"]] == [
        (True, False),
        (False, True),
        (False, True),
    ]
    assert local_api.query("SELECT event_id FROM feedback_events WHERE user_id = %s", (user_id,)) == [
        ("ok-1",)
    ]


@pytest.mark.parametrize("user_id", ["%00", "a%01b"])
def test_route_user_ids_with_control_characters_are_refused(local_api: Api, user_id: str):
    before = written(local_api)
    refused(local_api, local_api.client.delete(f"/api/users/{user_id}"))
    assert written(local_api) == before


@pytest.mark.parametrize("since", ["0", "1700000000", "2026-1-1", "2026-01-01T"])
def test_times_are_iso_8601_not_unix_seconds(local_api: Api, since: str):
    response = local_api.get("/api/analytics", params={"since": since})
    refused(local_api, response)
    assert "ISO 8601" in response.json()["error"]["message"]


def test_a_plain_date_is_a_time_its_start_in_utc(local_api: Api):
    """What people type: `?since=2026-11-01`, `published_after=2026-06-01`, a publication date."""
    assert local_api.get("/api/analytics", params={"since": "2026-11-01"}).status_code == 200
    episode = {"title": "Dated", "transcript": "A dated episode about tides.", "published_at": "2026-06-02"}
    added = local_api.post("/api/add_podcast", episode).json()
    assert added["published_at"] == "2026-06-02T00:00:00+00:00"
    after = {"q": "a dated episode about tides", "published_after": "2026-06-01"}
    assert added["id"] in [
        r["podcast_id"] for r in local_api.get("/api/search", params=after).json()["results"]
    ]
    later = {**after, "published_after": "2026-06-02"}  # after its start: not that day's midnight
    assert added["id"] not in [
        r["podcast_id"] for r in local_api.get("/api/search", params=later).json()["results"]
    ]


@pytest.mark.parametrize(
    ("route", "params"),
    [
        ("/api/search", {"q": "egypt", "categroy": "history"}),
        ("/api/recommend_podcasts", {"user_id": "someone", "categroy": "history"}),
        ("/api/analytics", {"sinse": "2026-11-01"}),
    ],
)
def test_an_unknown_query_parameter_is_refused_with_the_likely_one(local_api: Api, route: str, params: dict):
    response = local_api.get(route, params=params)
    refused(local_api, response)
    message = response.json()["error"]["message"]
    assert "unknown parameter" in message and "did you mean" in message


def test_a_function_key_in_the_query_string_is_not_an_unknown_parameter(local_api: Api):
    response = local_api.get("/api/search", params={"q": "egypt", "code": "a-function-key"})
    assert response.status_code == 200, response.text
