"""Scoped access over HTTP: with USER_AUTH=easyauth a listener route acts only for the caller
that App Service Authentication signed in; nothing is written for anyone else."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import Api, app_functions, run_api

pytestmark = pytest.mark.service  # over HTTP, against local_runner.py in a subprocess

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


# Every listener route (a function key), called by "ann" for another listener: `{user}` is
# replaced by an existing listener's id and by one nobody has.
FOR_ANOTHER = {
    "update_user_history": (
        "POST",
        "/api/update_user_history",
        {"json": {"user_id": "{user}", "listening_history": "jazz"}},
    ),
    "recommend_podcasts": ("GET", "/api/recommend_podcasts", {"params": {"user_id": "{user}"}}),
    "feedback": ("POST", "/api/feedback", {"json": {"user_id": "{user}", "podcast_id": 1, "event": "like"}}),
    "search": ("GET", "/api/search", {"params": {"q": "jazz", "user_id": "{user}"}}),
    "read_user": ("GET", "/api/users/{user}", {}),
}
# Listener routes that read the catalogue and take no user_id at all (one given is refused).
NO_USER = {
    "list_podcasts": "/api/podcasts",
    "read_podcast": "/api/podcasts/1",
    "similar_podcasts": "/api/podcasts/1/similar",
    "list_categories": "/api/categories",
}


def test_every_listener_route_acts_only_for_the_caller_and_tells_nothing_of_others(easyauth_api: Api):
    """The routes come from the app's own metadata: a new listener route fails this test until it
    has a case above (and it is bound: `endpoint.bound` checks every user_id a route parses)."""
    listener_routes = {name for name, f in app_functions().items() if f["auth"] == "FUNCTION"}
    assert listener_routes == set(FOR_ANOTHER) | set(NO_USER)
    for path in NO_USER.values():
        response = easyauth_api.get(path, params={"user_id": "existing"}, headers={PRINCIPAL: "ann"})
        assert response.status_code == 400 and "user_id: unknown parameter" in response.text, path
    assert history(easyauth_api, "existing", "existing") == 200
    for name, (method, path, request) in FOR_ANOTHER.items():
        for user in ("existing", "nobody-has-this-id"):
            filled = json.loads(json.dumps(request).replace("{user}", user))
            response = easyauth_api.client.request(method, path, headers={PRINCIPAL: "ann"}, **filled)
            assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden"), (
                name,
                user,
            )


FUNCTION_KEY, ADMIN_KEY = "listener-key-1234", "admin-key-5678"


@pytest.fixture(scope="module")
def keyed_api(create_database, tmp_path_factory) -> Iterator[Api]:
    dsn = create_database("keyed_api")
    env = {"AI_PROVIDER": "local", "LOCAL_FUNCTION_KEY": FUNCTION_KEY, "LOCAL_ADMIN_KEY": ADMIN_KEY}
    with run_api(dsn, env, tmp_path_factory.mktemp("logs") / "keyed.log") as api:
        yield api


def test_with_keys_set_the_local_runner_checks_them_like_the_functions_host(keyed_api: Api):
    def status(method: str, path: str, key: str | None = None, **kwargs) -> int:
        headers = {"x-functions-key": key} if key else {}
        return keyed_api.client.request(method, path, headers=headers, **kwargs).status_code

    episode = {"json": {"title": "Modal jazz", "transcript": "Kind of Blue, track by track."}}
    listener = {"json": {"user_id": "eve", "listening_history": "jazz"}}
    assert status("GET", "/api/health") == 200  # anonymous
    assert status("POST", "/api/update_user_history", **listener) == 401
    assert status("POST", "/api/update_user_history", "wrong-key", **listener) == 401
    assert status("POST", "/api/update_user_history", FUNCTION_KEY, **listener) == 200
    assert status("GET", f"/api/recommend_podcasts?user_id=eve&code={FUNCTION_KEY}") == 200
    assert status("POST", "/api/add_podcast", FUNCTION_KEY, **episode) == 401  # an operator route
    assert status("GET", "/api/analytics", FUNCTION_KEY) == 401
    assert status("GET", "/api/dashboard", FUNCTION_KEY) == 401
    assert (status("GET", "/api/ui"), status("GET", "/api/ui/app.js")) == (200, 200)  # the page: anonymous
    assert status("POST", "/api/add_podcast", ADMIN_KEY, **episode) == 201
    assert status("POST", "/api/update_user_history", ADMIN_KEY, **listener) == 200  # the admin key opens all
    assert keyed_api.query("SELECT count(*) FROM podcasts") == [(1,)]


def test_keys_in_the_query_never_reach_the_log(keyed_api: Api):
    assert keyed_api.get("/api/health", params={"code": ADMIN_KEY}).status_code == 200
    listener = {"user_id": "kim", "listening_history": "jazz"}
    assert keyed_api.post(f"/api/update_user_history?code={FUNCTION_KEY}", listener).status_code == 200
    assert keyed_api.get(f"/api/search?q=jazz&api_key={FUNCTION_KEY}&code={ADMIN_KEY}").status_code == 200
    log = keyed_api.log()
    assert "code=[redacted]" in log and "api_key=[redacted]" in log  # the requests were logged
    assert FUNCTION_KEY not in log and ADMIN_KEY not in log
