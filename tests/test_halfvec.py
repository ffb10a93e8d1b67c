"""EMBEDDING_STORAGE=halfvec through the whole API: episodes stored and indexed at half precision,
profiles averaged from them, feedback, recommendations and search."""

from __future__ import annotations

import pytest

from tests.conftest import openai_env, run_api

pytestmark = pytest.mark.service  # over HTTP, against local_runner.py in a subprocess


def test_the_loop_runs_on_halfvec_storage(create_database, fake, tmp_path):
    dsn = create_database("halfvec_api")
    env = openai_env(fake, EMBEDDING_STORAGE="halfvec")
    with run_api(dsn, env, tmp_path / "halfvec.log") as api:
        ids = []
        for n, topic in enumerate(["tides and harbours", "tides and boats", "bread and ovens"]):
            body = {"title": f"Episode {n}", "transcript": f"All about {topic}.", "category": "sea"}
            response = api.post("/api/add_podcast", body)
            assert response.status_code == 201 and response.json()["status"] == "ready", response.text
            ids.append(response.json()["id"])
        history = {"user_id": "sailor", "listening_history": "tides", "listened_podcast_ids": [ids[0]]}
        assert api.post("/api/update_user_history", history).status_code == 200
        page = api.get("/api/recommend_podcasts", params={"user_id": "sailor", "limit": 2})
        assert page.status_code == 200, page.text
        items = page.json()["recommendations"]
        assert items[0]["podcast_id"] == ids[1]  # closest to the episode they listened to, not it
        assert ids[0] not in {i["podcast_id"] for i in items}
        like = {"user_id": "sailor", "podcast_id": ids[1], "suggestion_id": items[0]["suggestion_id"]}
        assert api.post("/api/feedback", {**like, "event": "like"}).status_code == 201
        found = api.get("/api/search", params={"q": "tides and boats", "limit": 1}).json()["results"]
        assert [r["podcast_id"] for r in found] == [ids[1]]
        [(storage,)] = api.query("SELECT value FROM app_meta WHERE key = 'embedding_storage'")
        assert storage == "halfvec"
