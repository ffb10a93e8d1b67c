"""Scoped access over HTTP: with USER_AUTH=easyauth a listener route acts only for the caller
that App Service Authentication signed in; nothing is written for anyone else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Api, run_api

PRINCIPAL = "x-ms-client-principal-id"


@pytest.fixture(scope="module")
def easyauth_api(create_database, tmp_path_factory) -> Iterator[Api]:
    dsn = create_database("easyauth_api")
    env = {"AI_PROVIDER": "local", "USER_AUTH": "easyauth"}
    with run_api(dsn, env, tmp_path_factory.mktemp("logs") / "easyauth.log") as api:
        yield api


def history(api: Api, user_id: str, caller: str | None) -> int:
    headers = {PRINCIPAL: caller} if caller else {}
    body = {"user_id": user_id, "listening_history": "jazz"}
    return api.post("/api/update_user_history", body, headers=headers).status_code


def test_a_listener_acts_only_for_themselves(easyauth_api: Api):
    assert history(easyauth_api, "ann", "ann") == 200
    assert history(easyauth_api, "bob", "ann") == 403
    assert history(easyauth_api, "bob", None) == 401
    assert easyauth_api.query("SELECT id FROM users ORDER BY id") == [("ann",)]

    def recommend(caller: str) -> int:
        params = {"user_id": "ann", "limit": 3}
        return easyauth_api.get(
            "/api/recommend_podcasts", params=params, headers={PRINCIPAL: caller}
        ).status_code

    assert (recommend("ann"), recommend("bob")) == (200, 403)


def test_feedback_for_another_listener_is_refused_and_not_stored(easyauth_api: Api):
    assert history(easyauth_api, "cleo", "cleo") == 200
    episode = {"title": "Modal jazz", "transcript": "Kind of Blue, track by track."}
    podcast_id = easyauth_api.post("/api/add_podcast", episode).json()["id"]  # operator route: no user
    one = {"user_id": "cleo", "podcast_id": podcast_id, "event": "like"}
    response = easyauth_api.post("/api/feedback", one, headers={PRINCIPAL: "dan"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    many = [one, {**one, "event": "click"}]
    assert easyauth_api.post("/api/feedback", many, headers={PRINCIPAL: "dan"}).status_code == 403
    assert easyauth_api.query("SELECT count(*) FROM feedback_events") == [(0,)]
    assert easyauth_api.post("/api/feedback", many, headers={PRINCIPAL: "cleo"}).status_code == 200
    assert easyauth_api.query("SELECT count(*) FROM feedback_events") == [(2,)]
