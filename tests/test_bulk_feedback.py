"""Bulk feedback over HTTP on the real database: an array of events to `POST /api/feedback`, one
result per item in order, idempotent by (user_id, event_id), each user's new events folded into
their profile once; and `cli.py import-events`."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.conftest import ROOT, Api, user_in

pytestmark = pytest.mark.service  # over HTTP, against local_runner.py in a subprocess

MISSING_PODCAST = 987_654_321


def new_user(api: Api, history: str = "history, science and cooking") -> str:
    user_id = user_in("loop")
    response = api.post("/api/update_user_history", {"user_id": user_id, "listening_history": history})
    assert response.status_code == 200, response.text
    return user_id


def page(api: Api, user_id: str, limit: int) -> list[dict]:
    response = api.get("/api/recommend_podcasts", params={"user_id": user_id, "limit": limit})
    assert response.status_code == 200, response.text
    return response.json()["recommendations"]


def podcasts(api: Api) -> list[int]:
    return sorted(api.sample_ids.values())


def bulk(api: Api, items: list) -> list[dict]:
    response = api.post("/api/feedback", items)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(items)
    return results


def rows(api: Api, user_id: str) -> list[tuple]:
    return api.query(
        "SELECT id, podcast_id, suggestion_id, event, value, event_id FROM feedback_events"
        " WHERE user_id = %s ORDER BY id",
        (user_id,),
    )


def feedback_state(api: Api, user_id: str) -> tuple[np.ndarray | None, int]:
    [(vector, count)] = api.query(
        "SELECT feedback_vector::text, feedback_count FROM users WHERE id = %s", (user_id,)
    )
    return (None if vector is None else np.array(json.loads(vector))), count


def event(user_id: str, podcast_id: int, name: str, **extra) -> dict:
    return {"user_id": user_id, "podcast_id": podcast_id, "event": name, **extra}


def test_array_stores_the_good_items_and_answers_each_in_order(local_api: Api):
    alice, bob = new_user(local_api), new_user(local_api)
    mine, theirs = page(local_api, alice, 2), page(local_api, bob, 1)[0]
    other = next(p for p in podcasts(local_api) if p != theirs["podcast_id"])
    tag = uuid.uuid4().hex[:6]
    items = [
        event(alice, mine[0]["podcast_id"], "like", suggestion_id=mine[0]["suggestion_id"], event_id=tag),
        event("nobody-here", other, "click"),
        event(alice, MISSING_PODCAST, "click"),
        event(alice, other, "love"),
        event(alice, theirs["podcast_id"], "click", suggestion_id=theirs["suggestion_id"]),
        event(alice, mine[1]["podcast_id"], "listen", value=0.5),
        event(bob, theirs["podcast_id"], "click", suggestion_id=theirs["suggestion_id"], event_id=tag),
        "not an object",
    ]
    results = bulk(local_api, items)
    errors = {i: r["error"]["code"] for i, r in enumerate(results) if "error" in r}
    assert errors == {
        1: "user_not_found", 2: "podcast_not_found", 3: "invalid_request", 4: "suggestion_mismatch",
        7: "invalid_request",
    }  # fmt: skip
    assert all(set(results[i]["error"]) == {"code", "message"} for i in errors)
    assert [results[i]["created"] for i in (0, 5, 6)] == [True, True, True]
    assert [results[i]["event_id"] for i in (0, 5, 6)] == [tag, None, tag]
    assert rows(local_api, alice) == [
        (results[0]["id"], mine[0]["podcast_id"], mine[0]["suggestion_id"], "like", None, tag),
        (results[5]["id"], mine[1]["podcast_id"], None, "listen", 0.5, None),
    ]
    assert rows(local_api, bob) == [
        (results[6]["id"], theirs["podcast_id"], theirs["suggestion_id"], "click", None, tag)
    ]
    assert feedback_state(local_api, alice)[1] == 2
    assert feedback_state(local_api, bob)[1] == 1
    assert local_api.query("SELECT count(*) FROM feedback_events WHERE user_id = 'nobody-here'") == [(0,)]


def test_posting_the_same_array_again_stores_and_applies_nothing(local_api: Api):
    user_id = new_user(local_api)
    ids = podcasts(local_api)
    tag = uuid.uuid4().hex[:6]
    items = [
        event(user_id, ids[0], "like", event_id=f"{tag}-1"),
        event(user_id, ids[1], "listen", value=0.9, event_id=f"{tag}-2"),
        event(user_id, ids[2], "dislike", event_id=f"{tag}-3"),
        event(user_id, ids[0], "rate", value=5, event_id=f"{tag}-4"),
    ]
    first = bulk(local_api, items)
    assert [r["created"] for r in first] == [True] * 4
    stored, (vector, count) = rows(local_api, user_id), feedback_state(local_api, user_id)
    assert (len(stored), count) == (4, 4)
    again = bulk(local_api, items)
    assert again == [{**r, "created": False} for r in first]
    assert rows(local_api, user_id) == stored
    vector_after, count_after = feedback_state(local_api, user_id)
    assert count_after == 4
    assert np.array_equal(vector_after, vector)
    single = local_api.post("/api/feedback", items[1])  # the one-object form sees them too
    assert single.status_code == 200, single.text
    assert single.json()["id"] == first[1]["id"]


def test_an_event_id_twice_in_one_array_is_stored_and_applied_once(local_api: Api):
    user_id, reference = new_user(local_api), new_user(local_api)
    ids = podcasts(local_api)
    results = bulk(
        local_api,
        [
            event(user_id, ids[3], "like", event_id="dup"),
            event(user_id, ids[4], "dislike", event_id="dup"),
            event(user_id, ids[5], "click", event_id="other"),
        ],
    )
    assert [r["created"] for r in results] == [True, False, True]
    assert results[1]["id"] == results[0]["id"]
    assert [(r[1], r[3], r[5]) for r in rows(local_api, user_id)] == [
        (ids[3], "like", "dup"),
        (ids[5], "click", "other"),
    ]
    bulk(local_api, [event(reference, ids[3], "like"), event(reference, ids[5], "click")])
    vector, count = feedback_state(local_api, user_id)
    expected, _ = feedback_state(local_api, reference)
    assert count == 2
    np.testing.assert_allclose(vector, expected, atol=1e-5)


def test_the_limit_is_enforced_before_anything_is_written(local_api: Api):
    user_id = new_user(local_api)
    ids = podcasts(local_api)
    items = [event(user_id, ids[n % len(ids)], "click", event_id=f"e{n}") for n in range(1001)]
    response = local_api.post("/api/feedback", items)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "too_many_items"
    assert rows(local_api, user_id) == []
    assert feedback_state(local_api, user_id) == (None, 0)
    results = bulk(local_api, items[:1000])  # the limit itself is allowed
    assert sum(r["created"] for r in results) == 1000
    assert feedback_state(local_api, user_id)[1] == 1000


def test_an_empty_array_answers_no_results(local_api: Api):
    response = local_api.post("/api/feedback", [])
    assert (response.status_code, response.json()) == (200, {"results": []})


def test_folded_profile_equals_the_same_events_sent_one_at_a_time(local_api: Api):
    history = "Ancient empires, the stars above and cooking at home."
    batched, one_by_one = new_user(local_api, history), new_user(local_api, history)
    ids = podcasts(local_api)
    events = [
        ("like", ids[0], None), ("like", ids[7], None), ("skip", ids[14], None),
        ("listen", ids[21], 0.8), ("rate", ids[0], 5), ("dislike", ids[28], None),
        ("click", ids[7], None), ("listen", ids[35], None), ("rate", ids[42], 1), ("complete", ids[7], None),
    ]  # fmt: skip

    def body(user_id: str, name: str, podcast_id: int, value: float | None) -> dict:
        return event(user_id, podcast_id, name, **({} if value is None else {"value": value}))

    results = bulk(local_api, [body(batched, *e) for e in events])
    assert all(r["created"] for r in results)
    for e in events:
        response = local_api.post("/api/feedback", body(one_by_one, *e))
        assert response.status_code == 201, response.text
    vector, count = feedback_state(local_api, batched)
    expected, expected_count = feedback_state(local_api, one_by_one)
    assert count == expected_count == len(events)
    assert np.linalg.norm(expected) > 0.5  # the events moved it: the comparison means something
    np.testing.assert_allclose(vector, expected, atol=1e-5)
    sql = "SELECT array_agg(weight ORDER BY id) FROM feedback_events WHERE user_id = %s"
    [(weights,)] = local_api.query(sql, (batched,))
    assert weights == pytest.approx([1, 1, -0.3, 0.48, 1, -1, 0.2, 0.3, -1, 1])


def test_concurrent_arrays_over_the_same_users_lose_nothing(local_api: Api):
    users = [new_user(local_api) for _ in range(6)]
    ids = podcasts(local_api)

    def post(n: int) -> int:
        rng = random.Random(n)
        items = [event(rng.choice(users), rng.choice(ids), "click", event_id=f"{n}-{k}") for k in range(150)]
        with httpx.Client(base_url=local_api.base_url, timeout=60) as client:
            response = client.post("/api/feedback", json=items)
        assert all(r["created"] for r in response.json()["results"]), response.text
        return response.status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(post, range(6))) == [200] * 6
    unapplied = local_api.query(
        "SELECT u.id, u.feedback_count - (SELECT count(*) FROM feedback_events f WHERE f.user_id = u.id)"
        " FROM users u WHERE u.id = ANY(%s)",
        (users,),
    )
    assert dict(unapplied) == dict.fromkeys(users, 0)
    stored = local_api.query("SELECT count(*) FROM feedback_events WHERE user_id = ANY(%s)", (users,))
    assert stored == [(900,)]
    embeddings = local_api.query("SELECT id, embedding::text FROM podcasts WHERE id = ANY(%s)", (ids,))
    vectors = {podcast_id: np.array(json.loads(text)) for podcast_id, text in embeddings}
    for user_id in users:  # every event moved the vector: no update was lost between requests
        sql = "SELECT podcast_id, weight FROM feedback_events WHERE user_id = %s"
        events = local_api.query(sql, (user_id,))
        expected = sum(weight * vectors[podcast_id] for podcast_id, weight in events)
        np.testing.assert_allclose(feedback_state(local_api, user_id)[0], expected, atol=1e-4)


def cli(api: Api, *args: str) -> subprocess.CompletedProcess:
    """`python cli.py *args` on the service's database, as an operator runs it."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_", "AI_"))},
        "DATABASE_URL": api.dsn,
        "AI_PROVIDER": "local",
        "HF_HUB_OFFLINE": "1",
    }
    command = [sys.executable, "cli.py", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def import_events(api: Api, path) -> subprocess.CompletedProcess:
    return cli(api, "import-events", str(path), "--batch-size", "2", "--quiet")


def test_cli_import_events_from_csv_reports_failures_and_is_idempotent(local_api: Api, tmp_path):
    first, second = new_user(local_api), new_user(local_api)
    ids = podcasts(local_api)
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(
        "user_id,podcast_id,event,value,event_id\n"
        f"{first},{ids[0]},like,,c-1\n"
        f"{first},{ids[1]},listen,0.5,c-2\n"
        f"{second},{ids[2]},rate,4,c-3\n"
        f"{second},{MISSING_PODCAST},click,,c-4\n"
        f"{first},{ids[3]},love,,c-5\n"
    )
    done = import_events(local_api, csv_file)
    assert done.returncode == 1, done.stderr
    assert "imported 3 new events, 0 already stored, 2 failed" in done.stdout
    assert "line 5: podcast_not_found" in done.stdout
    assert "line 6: invalid_request: event:" in done.stdout
    assert [(r[1], r[3], r[4], r[5]) for r in rows(local_api, first)] == [
        (ids[0], "like", None, "c-1"),
        (ids[1], "listen", 0.5, "c-2"),
    ]
    assert [(r[3], r[4]) for r in rows(local_api, second)] == [("rate", 4.0)]
    state = [feedback_state(local_api, u)[1] for u in (first, second)]
    assert state == [2, 1]
    again = import_events(local_api, csv_file)
    assert again.returncode == 1, again.stderr
    assert "imported 0 new events, 3 already stored, 2 failed" in again.stdout
    assert len(rows(local_api, first)) + len(rows(local_api, second)) == 3
    assert [feedback_state(local_api, u)[1] for u in (first, second)] == state


def test_cli_import_events_from_jsonl_is_idempotent(local_api: Api, tmp_path):
    user_id = new_user(local_api)
    ids = podcasts(local_api)
    events = [
        event(user_id, ids[4], "like", event_id="j-1"),
        event(user_id, ids[5], "skip", event_id="j-2"),
        event(user_id, ids[6], "listen", value=1, event_id="j-3"),
    ]
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text("\n".join(json.dumps(e) for e in events) + "\n\n")
    done = import_events(local_api, jsonl)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported 3 new events, 0 already stored, 0 failed" in done.stdout
    stored, state = rows(local_api, user_id), feedback_state(local_api, user_id)
    assert [r[5] for r in stored] == ["j-1", "j-2", "j-3"]
    assert state[1] == 3
    again = import_events(local_api, jsonl)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "imported 0 new events, 3 already stored, 0 failed" in again.stdout
    assert rows(local_api, user_id) == stored
    vector, count = feedback_state(local_api, user_id)
    assert count == 3 and np.array_equal(vector, state[0])
