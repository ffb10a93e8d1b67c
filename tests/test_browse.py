"""The catalogue's reads and a listener's own data, over HTTP on the sample catalogue: an episode,
a page of them with filters, the categories, "more like this", and what search leaves out."""

from __future__ import annotations

import pytest

from tests.conftest import Api, wait_for_model

pytestmark = pytest.mark.service


def get(api: Api, path: str, **params) -> dict:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def an_episode(api: Api, category: str = "history") -> dict:
    return get(api, "/api/podcasts", category=category, limit=1)["podcasts"][0]


def test_an_episode_reads_without_its_transcript(local_api: Api):
    listed = an_episode(local_api)
    episode = get(local_api, f"/api/podcasts/{listed['id']}")
    assert episode == listed and episode["status"] == "ready" and episode["summary"]
    assert "transcript" not in episode and "last_error" not in episode
    missing = local_api.get("/api/podcasts/999999999")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "podcast_not_found")
    post = local_api.client.post("/api/podcasts/1")
    assert post.status_code == 405 and set(post.headers["allow"].split(", ")) >= {"GET", "PATCH", "DELETE"}


def test_the_episode_list_pages_with_filters_and_never_repeats(local_api: Api):
    [(total,)] = local_api.query(
        "SELECT count(*) FROM podcasts WHERE status = 'ready' AND category = 'history'"
    )
    seen, before = [], None
    while True:
        page = get(
            local_api,
            "/api/podcasts",
            category="history",
            limit=7,
            **({"before_id": before} if before else {}),
        )
        assert all(p["category"] == "history" for p in page["podcasts"])
        seen += [p["id"] for p in page["podcasts"]]
        if page["next"] is None:
            break
        before = page["next"]
    assert len(seen) == len(set(seen)) == total and seen == sorted(seen, reverse=True)
    short = get(local_api, "/api/podcasts", max_duration_seconds=1200, limit=100)["podcasts"]
    assert short and all(p["duration_seconds"] is not None and p["duration_seconds"] <= 1200 for p in short)


def test_the_categories_are_listed_with_their_episodes(local_api: Api):
    categories = {c["category"]: c["episodes"] for c in get(local_api, "/api/categories")["categories"]}
    assert len(categories) >= 8
    assert categories["history"] == len(
        get(local_api, "/api/podcasts", category="history", limit=100)["podcasts"]
    )


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/search", {"q": "ancient egypt"}),
        ("/api/podcasts", {}),
        ("/api/recommend_podcasts", {"user_id": "sample-margaret"}),
    ],
)
def test_a_category_no_episode_has_is_said_not_answered_empty(local_api: Api, path: str, params: dict):
    response = local_api.get(path, params={**params, "category": "histroy"})
    assert (response.status_code, response.json()["error"]["code"]) == (404, "category_not_found")
    assert "/api/categories" in response.json()["error"]["message"]


def test_search_shows_only_matches_above_the_floor(local_api: Api):
    """One match and then an unrelated comedy at 0.16 was a full page of 10 before."""
    answer = get(local_api, "/api/search", q="daily life in ancient egypt")
    scores = [r["score"] for r in answer["results"]]
    assert answer["min_score"] == 0.2 and scores and all(score >= 0.2 for score in scores)
    assert len(scores) < 10
    everything = get(local_api, "/api/search", q="daily life in ancient egypt", min_score=0)["results"]
    assert len(everything) == 10 and min(r["score"] for r in everything) < 0.2


def test_more_like_this_blends_co_engagement_and_content_with_reasons(local_api: Api):
    """Listeners who liked a history episode also liked a comedy one: the comedy is like it by
    what its listeners did, the other history episodes by what they say."""
    history, comedy = an_episode(local_api, "history"), an_episode(local_api, "comedy")
    for listener in ("browse-fan-1", "browse-fan-2", "browse-fan-3"):
        body = {"user_id": listener, "listening_history": "Anything, really."}
        assert local_api.post("/api/update_user_history", body).status_code == 200
        for episode in (history, comedy):
            like = {"user_id": listener, "podcast_id": episode["id"], "event": "like"}
            assert local_api.post("/api/feedback", like).status_code == 201
    wait_for_model(local_api)
    similar = get(local_api, f"/api/podcasts/{history['id']}/similar", limit=6)["similar"]
    assert len(similar) == 6 and history["id"] not in [s["id"] for s in similar]
    assert [s["score"] for s in similar] == sorted((s["score"] for s in similar), reverse=True)
    assert all(
        s["evidence"]["podcast_id"] == history["id"] and history["title"] in s["reason"] for s in similar
    )
    by_id = {s["id"]: s for s in similar}
    assert by_id[comedy["id"]]["evidence"]["kind"] == "also_enjoyed"
    assert sum(s["category"] == "history" and s["evidence"]["kind"] == "same_subject" for s in similar) >= 3


def test_a_listener_reads_their_own_data(local_api: Api):
    body = {
        "user_id": "browse-reader",
        "listening_history": "Tides and lighthouses.",
        "listened_podcast_ids": [1, 2],
    }
    assert local_api.post("/api/update_user_history", body).status_code == 200
    own = get(local_api, "/api/users/browse-reader")
    assert own["listening_history"] == "Tides and lighthouses." and own["listened_podcast_ids"] == [1, 2]
    assert own["feedback_events"] == 0 and own["profile_status"] == "ready"
    missing = local_api.get("/api/users/nobody-reads-this")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "user_not_found")


def test_a_page_takes_the_filters_search_takes(local_api: Api):
    """Language, maximum duration and publication date, as search has them, on a listener's page."""
    user_id = "browse-filtered"
    body = {"user_id": user_id, "listening_history": "History, science and the stories of cities."}
    assert local_api.post("/api/update_user_history", body).status_code == 200
    [(cutoff,)] = local_api.query(
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_seconds) FROM podcasts"
        " WHERE status = 'ready'"
    )
    params = {"user_id": user_id, "limit": 5, "max_duration_seconds": cutoff, "published_after": "2000-01-01"}
    page = get(local_api, "/api/recommend_podcasts", **params)["recommendations"]
    assert len(page) == 5
    durations = dict(local_api.query("SELECT id, duration_seconds FROM podcasts WHERE id = ANY(%s)",
                                     ([item["podcast_id"] for item in page],)))  # fmt: skip
    assert all(durations[item["podcast_id"]] <= cutoff for item in page)
    none = get(local_api, "/api/recommend_podcasts", user_id=user_id, language="xx")["recommendations"]
    assert none == []  # no episode in that language: an empty page, not other languages
