"""The local runner reads routes and timers from the FunctionApp itself."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import azure.functions as func
import httpx
import psycopg2
import pytest

import db_utils
import local_runner
from config import get_settings
from recommender.runner import asgi, background
from tests.conftest import ROOT, Api, run_api, wait_for


def test_route_templates_become_patterns():
    pattern = asgi.compile_route("api", "podcasts/{id:int}/{part?}")
    assert pattern.match("/api/podcasts/12/x").groupdict() == {"id": "12", "part": "x"}
    assert pattern.match("/api/podcasts/12/")
    assert not pattern.match("/api/podcasts")
    assert asgi.compile_route("", "health").match("/health")


def test_serves_exactly_the_registered_functions_over_http():
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="items/{item_id}", methods=["GET"])
    def get_item(req: func.HttpRequest) -> func.HttpResponse:
        body = f"{req.route_params['item_id']}:{req.params.get('q')}:{req.method}"
        return func.HttpResponse(body, status_code=203, headers={"X-Seen": "1"}, mimetype="text/plain")

    @app.route(route="echo", methods=["POST"])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(req.get_body(), mimetype="application/octet-stream")

    running = local_runner.serve(app.get_functions(), port=0)
    base = f"http://127.0.0.1:{running.port}"
    try:
        got = httpx.get(f"{base}/api/items/7", params={"q": "a b"})
        assert (got.status_code, got.text, got.headers["x-seen"]) == (203, "7:a b:GET", "1")
        assert got.headers["content-type"].startswith("text/plain")
        assert httpx.post(f"{base}/api/echo", content=b"\x00\x01").content == b"\x00\x01"
        assert httpx.delete(f"{base}/api/items/7").status_code == 405
        assert httpx.get(f"{base}/api/other").status_code == 404
    finally:
        running.shutdown()


@pytest.mark.parametrize(
    ("schedule", "seconds"),
    [
        ("*/10 * * * * *", 10),
        ("0 */5 * * * *", 300),
        ("0 0 * * * *", 3600),
        ("0 0 */2 * * *", 7200),
        ("0 30 9 * * 1-5", 60),  # not a fixed interval: every minute
    ],
)
def test_timer_schedules_become_intervals(schedule: str, seconds: float):
    assert background.schedule_interval(schedule) == seconds


def test_a_setting_schedule_is_read_from_the_settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ENRICH_SCHEDULE", "0 */15 * * * *")
    get_settings.cache_clear()
    try:
        assert background.schedule_interval("%ENRICH_SCHEDULE%") == 900
    finally:
        get_settings.cache_clear()


# --- HTTP edge cases, over real sockets -----------------------------------------------------


def raw_request(base_url: str, data: bytes, timeout: float = 10.0) -> tuple[int, str, bytes]:
    """Send `data` as is on a new connection; returns the status, the header block and the body.
    Raises socket.timeout if the server does not answer within `timeout` (a hang)."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without an answer: {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        length = int(match[1]) if match else None  # none: the server closes after the body
        while length is None or len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(head.split()[1]), head.decode("latin-1"), body


@pytest.mark.service
def test_route_parameters_and_query_strings_are_url_decoded(local_api: Api):
    for user_id in ("john smith", f"band/{uuid.uuid4().hex[:6]} ü"):
        body = {"user_id": user_id, "listening_history": "Jazz standards and big bands."}
        assert local_api.post("/api/update_user_history", body).status_code == 200
        encoded = quote(user_id, safe="")
        got = local_api.get(f"/api/recommend_podcasts?user_id={encoded}&limit=2")
        assert (got.status_code, got.json()["user_id"]) == (200, user_id)
        deleted = local_api.client.delete(f"/api/users/{encoded}")
        assert (deleted.status_code, deleted.json()["user_id"]) == (200, user_id), deleted.text
        assert local_api.query("SELECT 1 FROM users WHERE id = %s", (user_id,)) == []


@pytest.mark.service
def test_a_chunked_body_is_read(local_api: Api):
    user_id = f"chunked-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"user_id": user_id, "listening_history": "Volcanoes and lava."}).encode()
    chunks = (body[i : i + 7] for i in range(0, len(body), 7))  # a generator: sent chunked
    got = local_api.post(
        "/api/update_user_history", content=chunks, headers={"content-type": "application/json"}
    )
    assert got.status_code == 200, got.text
    assert got.request.headers["transfer-encoding"] == "chunked"
    assert got.json()["user_id"] == user_id


@pytest.mark.service
@pytest.mark.parametrize("length", ["-1", "abc", "1e3"])
def test_an_invalid_content_length_is_a_prompt_400(local_api: Api, length: str):
    """uvicorn's parser (h11) rejects it before the app: its own plain-text 400, then it closes."""
    request = f"POST /api/update_user_history HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}"
    status, head, _ = raw_request(local_api.base_url, request.encode())
    assert status == 400
    assert "connection: close" in head.lower()


@pytest.mark.service
def test_an_oversized_content_length_is_413_before_the_body_is_sent(local_api: Api):
    limit = get_settings().max_body_bytes
    request = (
        "POST /api/add_podcast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {limit + 1}\r\n\r\n"
    )
    status, _, body = raw_request(local_api.base_url, request.encode())  # no body follows
    assert status == 413
    assert json.loads(body)["error"]["code"] == "body_too_large"


def test_a_chunked_body_is_cut_off_at_the_limit():
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    calls = []

    @app.route(route="sink", methods=["POST"])
    def sink(req: func.HttpRequest) -> func.HttpResponse:
        calls.append(len(req.get_body()))
        return func.HttpResponse("ok")

    running = local_runner.serve(app.get_functions(), port=0, max_body_bytes=1000)
    base = f"http://127.0.0.1:{running.port}"
    try:
        small = httpx.post(f"{base}/api/sink", content=iter([b"x" * 600, b"x" * 400]))
        assert (small.status_code, calls) == (200, [1000])
        big = httpx.post(f"{base}/api/sink", content=iter([b"x" * 600] * 100))
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "body_too_large"
        assert calls == [1000]
    finally:
        running.shutdown()


@pytest.mark.service
def test_an_unknown_route_is_a_json_404(local_api: Api):
    for path in ("/api/nothing_here", "/elsewhere", "/api/health/extra"):
        got = local_api.get(path)
        assert got.status_code == 404
        assert got.json()["error"]["code"] == "not_found"


@pytest.mark.service
def test_many_concurrent_clients_are_all_answered(local_api: Api):
    clients = 200  # the old runner (listen backlog 5) lost some at 70
    start = threading.Barrier(clients)

    def one(_: int) -> int:
        with httpx.Client(base_url=local_api.base_url, timeout=30) as client:  # a connection each
            start.wait()
            return client.get("/api/health").status_code

    with ThreadPoolExecutor(clients) as pool:
        assert list(pool.map(one, range(clients))) == [200] * clients


# --- several processes ------------------------------------------------------------------------


def answers(api: Api) -> bool:
    try:
        return api.get("/api/health").status_code == 200
    except httpx.TransportError:
        return False


def background_holders(api: Api) -> list[int]:
    """The client pids (from application_name) of the sessions holding the background lock of
    the database of `api` (other tests' runners hold it on theirs)."""
    rows = api.query(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
        " WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (background.BACKGROUND_LOCK_ID,),
    )
    return [int(name.removeprefix("local-runner-")) for (name,) in rows]


@pytest.mark.service
def test_with_two_workers_the_background_worker_runs_in_one_process(create_database, tmp_path: Path):
    dsn = create_database("runner_workers")
    with run_api(dsn, {"AI_PROVIDER": "local"}, tmp_path / "workers.log", "--workers", "2") as api:
        process = api.process
        assert "with 2 worker processes" in api.log()
        assert wait_for(lambda: len(background_holders(api)) == 1, 30)
        time.sleep(background.LOCK_RETRY_SECONDS + 0.5)  # the other one has tried again
        [holder] = background_holders(api)
        assert api.log().count("background worker: this process") == 1
        assert holder != process.pid

        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:  # the holder enriches it
            cur.execute("INSERT INTO podcasts (title, transcript) VALUES ('Lava', 'magma') RETURNING id")
            [podcast_id] = cur.fetchone()
        ready = "SELECT status FROM podcasts WHERE id = %s"
        assert wait_for(lambda: api.query(ready, (podcast_id,)) == [("ready",)], 30)

        os.kill(holder, signal.SIGKILL)  # the other process (or the holder's replacement) takes over
        assert wait_for(lambda: background_holders(api) not in ([], [holder]), 30), api.log()
        assert len(background_holders(api)) == 1
        assert answers(api)
        started = time.monotonic()
        process.terminate()
        process.wait(timeout=20)
    assert time.monotonic() - started < 20
    assert "Stopping parent process" in api.log()


@pytest.mark.service
def test_ctrl_c_stops_the_embedded_postgres_it_started(tmp_path: Path):
    """`make run` on a fresh clone: two worker processes on the embedded database. Their exit
    handlers do not run, so without releasing it themselves the server outlived Ctrl+C."""
    env = {"DATABASE_URL": "", "DATA_DIR": str(tmp_path / "data"), "AI_PROVIDER": "local"}
    with run_api("", env, tmp_path / "runner.log", "--workers", "2") as api:
        postmaster = tmp_path / "data" / db_utils.EMBEDDED_PGDATA / "postmaster.pid"
        assert postmaster.exists()
        api.process.send_signal(signal.SIGINT)
        api.process.wait(timeout=30)
    assert wait_for(lambda: not postmaster.exists(), timeout=20), "the embedded Postgres still runs"


def test_make_run_takes_a_port_and_a_host_and_still_seeds():
    """`make run PORT=8123 HOST=0.0.0.0`, as the README says (a dry run: nothing is started)."""
    done = subprocess.run(
        ["make", "-n", "run", "PORT=8123", "HOST=0.0.0.0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert any("cli.py seed --if-empty" in line for line in lines)
    assert any("local_runner.py" in line and "--host 0.0.0.0 --port 8123" in line for line in lines), lines
