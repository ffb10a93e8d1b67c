"""Outages over real HTTP: a hanging AI service (request budget), Postgres stopped and restarted
under concurrent writes (503 + Retry-After, Idempotency-Key), and Idempotency-Key replays."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pgserver
import psycopg2
import pytest

from tests.conftest import Api, openai_env, query, run_api, wait_for
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = pytest.mark.service  # over HTTP, against local_runner.py in a subprocess

BUDGET = 2.0
MARGIN = 1.5  # the database work of a request, on a shared 2-core machine


@pytest.fixture(scope="module")
def budget_api(create_database, fake_openai: FakeOpenAIServer, tmp_path_factory) -> Iterator[Api]:
    """The service on the `openai` provider (the fake server) with a 2-second request budget."""
    dsn = create_database("resilience_budget")
    env = openai_env(
        fake_openai, REQUEST_BUDGET_SECONDS=str(BUDGET), AI_TIMEOUT_SECONDS="20", AI_MAX_RETRIES="2"
    )
    with run_api(dsn, env, tmp_path_factory.mktemp("logs") / "budget.log") as api:
        yield api


def episode(title: str) -> dict:
    return {"title": title, "transcript": f"{title}. A long walk through the history of salt and trade."}


def timed(call) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = call()
    return response, time.monotonic() - start


def test_a_hanging_ai_service_costs_each_request_at_most_its_budget(
    budget_api: Api, ai: FakeOpenAIServer
) -> None:
    ready = budget_api.post("/api/add_podcast", episode("Salt roads"))
    assert ready.status_code == 201, ready.text
    user = f"hang-{uuid.uuid4().hex[:8]}"
    created = budget_api.post(
        "/api/update_user_history",
        {"user_id": user, "listening_history": "salt and trade", "listened_podcast_ids": []},
    )
    assert created.status_code == 200 and created.json()["profile_status"] == "ready", created.text
    liked = budget_api.post(
        "/api/feedback", {"user_id": user, "podcast_id": ready.json()["id"], "event": "like"}
    )
    assert liked.status_code == 201, liked.text
    budget_api.post("/api/add_podcast", episode("Pepper ships"))  # a candidate to recommend

    ai.chat_delay_seconds = ai.embedding_delay_seconds = 30.0
    calls = {
        "add_podcast": lambda: budget_api.post("/api/add_podcast", episode("Silk and spice")),
        "add_podcasts": lambda: budget_api.post("/api/add_podcasts", [episode("Tea clippers")]),
        "update_user_history": lambda: budget_api.post(
            "/api/update_user_history", {"user_id": user, "listening_history": "tea and clipper ships"}
        ),
        "recommend_podcasts": lambda: budget_api.get(f"/api/recommend_podcasts?user_id={user}"),
        "search": lambda: budget_api.get("/api/search?q=clipper+ships+racing+tea"),
        "analytics": lambda: budget_api.get("/api/analytics"),
    }
    answers = {name: timed(call) for name, call in calls.items()}
    for name, (_, seconds) in answers.items():
        assert seconds < BUDGET + MARGIN, f"{name} took {seconds:.1f} s"

    assert answers["add_podcast"][0].status_code == 202
    assert answers["add_podcast"][0].json()["status"] == "pending"
    assert answers["add_podcasts"][0].json()["results"][0]["status"] == "pending"
    history = answers["update_user_history"][0]
    assert history.status_code == 200 and history.json()["profile_status"] == "pending", history.text
    page = answers["recommend_podcasts"][0]
    assert page.status_code == 200 and page.json()["recommendations"], page.text
    assert {item["reason_source"] for item in page.json()["recommendations"]} == {"fallback"}
    search = answers["search"][0]
    assert search.status_code == 503 and search.json()["error"]["code"] == "ai_unavailable"
    assert answers["analytics"][0].status_code == 200
    print({name: round(seconds, 2) for name, (_, seconds) in answers.items()})


def test_the_worker_leaves_an_episode_to_its_request_only_for_the_requests_budget(
    budget_api: Api, ai: FakeOpenAIServer
) -> None:
    """Should the request fail to save its enrichment (a database outage), the worker takes the
    episode up within the budget and the saving, not two minutes later."""
    ai.chat_delay_seconds = 30.0
    title = f"Lease {uuid.uuid4().hex[:8]}"
    lease = "SELECT extract(epoch FROM next_attempt_at - now())::float8 FROM podcasts WHERE title = %s"
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(budget_api.post, "/api/add_podcast", episode(title))
        assert wait_for(lambda: budget_api.query(lease, (title,)), timeout=10)
        [(seconds,)] = budget_api.query(lease, (title,))
        assert 0 < seconds <= BUDGET + 20 + 1, seconds
        assert answer.result().status_code == 202


@pytest.fixture(scope="module")
def crowded_api(create_database, fake_openai: FakeOpenAIServer, tmp_path_factory) -> Iterator[Api]:
    """Six threads serving requests (as on a 2-core instance), four of them at most in AI calls."""
    env = openai_env(
        fake_openai,
        REQUEST_BUDGET_SECONDS=str(BUDGET),
        PYTHON_THREADPOOL_THREAD_COUNT="6",
        AI_REQUEST_SLOTS="4",
        AI_MAX_RETRIES="0",
    )
    with run_api(
        create_database("resilience_crowded"), env, tmp_path_factory.mktemp("logs") / "crowded.log"
    ) as api:
        yield api


def test_a_hung_ai_service_never_holds_every_thread(crowded_api: Api, ai: FakeOpenAIServer) -> None:
    """16 episodes added at once while the AI hangs, on 6 threads: 4 wait out their budget, the
    others are stored pending at once, and health answers at once meanwhile."""
    ai.chat_delay_seconds = ai.embedding_delay_seconds = 30.0
    with ThreadPoolExecutor(16) as pool:
        adds = [
            pool.submit(timed, lambda n=n: crowded_api.post("/api/add_podcast", episode(f"Hung {n}")))
            for n in range(16)
        ]
        time.sleep(0.5)
        health, health_seconds = timed(lambda: crowded_api.get("/api/health"))
        answers = [future.result() for future in adds]
    assert health.status_code == 200 and health_seconds < 1.0, health_seconds
    assert [response.status_code for response, _ in answers] == [202] * 16
    slowest = max(seconds for _, seconds in answers)
    assert slowest < BUDGET + MARGIN, slowest
    print(f"health {health_seconds:.2f} s; add_podcast {sorted(round(s, 2) for _, s in answers)}")


def test_idempotency_key_replays_the_first_answer(budget_api: Api, ai: FakeOpenAIServer) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    body = episode(f"Replayed {uuid.uuid4().hex[:6]}")
    first = budget_api.post("/api/add_podcast", body, headers=key)
    again = budget_api.post("/api/add_podcast", body, headers=key)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert budget_api.query("SELECT count(*) FROM podcasts WHERE title = %s", (body["title"],)) == [(1,)]

    other = budget_api.post("/api/add_podcast", episode("Another body"), headers=key)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"

    # A refused request (4xx) stores nothing: the same key can be used again.
    missing = {"user_id": "nobody-here", "podcast_id": first.json()["id"], "event": "like"}
    refused = [budget_api.post("/api/feedback", missing, headers=key) for _ in range(2)]
    assert [r.status_code for r in refused] == [404, 404]
    assert "Idempotent-Replayed" not in refused[1].headers

    # A duplicate sent while the first still runs answers 409; afterwards it replays.
    ai.chat_delay_seconds = 1.0
    slow = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    slow_body = episode(f"Slow {uuid.uuid4().hex[:6]}")
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(budget_api.post, "/api/add_podcast", slow_body, headers=slow)
        time.sleep(0.4)
        duplicate = budget_api.post("/api/add_podcast", slow_body, headers=slow)
        done = running.result()
    assert duplicate.status_code == 409 and duplicate.json()["error"]["code"] == "idempotency_in_progress"
    replay = budget_api.post("/api/add_podcast", slow_body, headers=slow)
    assert (replay.status_code, replay.json()) == (done.status_code, done.json())
    assert budget_api.query("SELECT count(*) FROM podcasts WHERE title = %s", (slow_body["title"],)) == [(1,)]


@pytest.fixture
def own_postgres(tmp_path) -> Iterator[pgserver.PostgresServer]:
    """A Postgres of this test's own, which it stops and starts (the session's server stays up)."""
    server = pgserver.get_server(tmp_path / "pg", cleanup_mode="stop")
    yield server
    server.cleanup()


def post_until_acknowledged(api: Api, path: str, body: dict, statuses: list[int]) -> httpx.Response:
    """A careful client: one Idempotency-Key, retried on 503 (after Retry-After) and 409."""
    key = {"Idempotency-Key": str(uuid.uuid4())}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = api.post(path, body, headers=key)
        statuses.append(response.status_code)
        if response.status_code == 503:
            assert response.json()["error"]["code"] == "database_unavailable", response.text
            time.sleep(min(float(response.headers["Retry-After"]), 0.5))
        elif response.status_code == 409:
            time.sleep(0.5)
        else:
            return response
    raise AssertionError(f"{path} never acknowledged")


def test_postgres_restart_under_concurrent_writes_loses_and_duplicates_nothing(
    own_postgres: pgserver.PostgresServer, ai: FakeOpenAIServer, tmp_path
) -> None:
    dsn = own_postgres.get_uri()
    env = openai_env(ai, REQUEST_BUDGET_SECONDS="5", DB_POOL_MAX="6")
    clients, rounds = 6, 8  # rounds each writer makes at least, and goes on until the restart is over
    statuses: list[int] = []
    recovered = threading.Event()
    with run_api(dsn, env, tmp_path / "restart.log") as api:
        podcast = api.post("/api/add_podcast", episode("The salt march")).json()["id"]
        for client in range(clients):
            body = {"user_id": f"writer-{client}", "listening_history": "salt"}
            assert api.post("/api/update_user_history", body).status_code == 200

        def writer(client: int) -> list[httpx.Response]:
            answers = []
            n = 0
            while n < rounds or not recovered.is_set():
                title = f"Episode {client}-{n}"
                answers.append(post_until_acknowledged(api, "/api/add_podcast", episode(title), statuses))
                event = {"user_id": f"writer-{client}", "podcast_id": podcast, "event": "click"}
                answers.append(post_until_acknowledged(api, "/api/feedback", event, statuses))
                n += 1
                time.sleep(0.05)
            return answers

        def outage() -> None:
            time.sleep(0.5)
            pgserver.pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=own_postgres.pgdata, user=own_postgres.system_user
            )
            time.sleep(3.0)
            own_postgres.ensure_postgres_running()
            time.sleep(0.5)
            recovered.set()

        with ThreadPoolExecutor(clients + 1) as pool:
            restart = pool.submit(outage)
            results = list(pool.map(writer, range(clients)))
            restart.result()
        assert own_postgres.get_uri() == dsn

    assert 503 in statuses, "the outage was not noticed by any write"
    assert all(status < 500 or status == 503 for status in statuses), sorted(set(statuses))
    for answers in results:
        assert all(200 <= answer.status_code < 300 for answer in answers)
    made = {client: len(answers) // 2 for client, answers in enumerate(results)}
    titles = dict(
        query(dsn, "SELECT title, count(*) FROM podcasts WHERE title LIKE 'Episode %%' GROUP BY title")
    )
    assert titles == {f"Episode {c}-{n}": 1 for c in range(clients) for n in range(made[c])}
    clicks = dict(query(dsn, "SELECT user_id, count(*) FROM feedback_events GROUP BY user_id"))
    assert clicks == {f"writer-{c}": made[c] for c in range(clients)}
    print(
        f"{len(statuses)} requests: " + ", ".join(f"{s}: {statuses.count(s)}" for s in sorted(set(statuses)))
    )


def test_after_postgres_restarts_while_idle_the_first_requests_succeed(
    own_postgres: pgserver.PostgresServer, tmp_path
) -> None:
    """Every pooled connection is stale after a restart: each is found out before use (the server
    told it so) and replaced, so no request pays for one with a 503."""
    env = {"AI_PROVIDER": "local", "DB_POOL_MAX": "4"}
    with run_api(own_postgres.get_uri(), env, tmp_path / "idle_restart.log") as api:
        assert api.post(
            "/api/update_user_history", {"user_id": "idle", "listening_history": "salt"}
        ).is_success
        with ThreadPoolExecutor(4) as pool:  # open every pooled connection of the process
            assert all(r.is_success for r in pool.map(lambda _: api.get("/api/health"), range(16)))
        pgserver.pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=own_postgres.pgdata, user=own_postgres.system_user
        )
        own_postgres.ensure_postgres_running()
        statuses = [
            api.get("/api/recommend_podcasts", params={"user_id": "idle"}).status_code for _ in range(8)
        ]
    assert statuses == [200] * 8


def test_health_never_waits_on_a_busy_pool(create_database, tmp_path) -> None:
    """The process's one pooled connection is held by a request waiting on a lock: health answers
    at once, `degraded` with the figures it read last, then `ok` once the connection is free."""
    dsn = create_database("resilience_busy_pool")
    env = {"AI_PROVIDER": "local", "DB_POOL_MAX": "1", "PREPARE_PAGES": "false"}
    with run_api(dsn, env, tmp_path / "busy.log") as api:
        assert api.post(
            "/api/update_user_history", {"user_id": "held", "listening_history": "salt"}
        ).is_success
        assert api.get("/api/health").json()["status"] == "ok"
        with psycopg2.connect(dsn) as holder, holder.cursor() as cur:
            cur.execute("SELECT 1 FROM users WHERE id = 'held' FOR UPDATE")  # the next write waits on it
            with ThreadPoolExecutor(1) as pool:
                history = {"user_id": "held", "listening_history": "pepper"}
                write = pool.submit(api.post, "/api/update_user_history", history)
                time.sleep(1.0)  # the request now holds the pooled connection, waiting on the lock
                answer, seconds = timed(lambda: api.get("/api/health"))
                holder.rollback()
                assert write.result().status_code == 200
        body = answer.json()
        assert answer.status_code == 200 and seconds < 1.0, seconds
        assert body["status"] == "degraded" and body["database"]["busy"], body["database"]
        assert body["podcasts"] is not None  # the figures read last
        assert api.get("/api/health").json()["status"] == "ok"
