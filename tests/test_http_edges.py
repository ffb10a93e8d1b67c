"""The edges of HTTP a client or a browser may reach: what a body must be declared as, a byte
order mark, numbers JSON allows, HEAD, a stalled upload, and the messages of what is refused."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from azure.functions import AuthLevel, Blueprint, FunctionApp, HttpRequest, HttpResponse

import local_runner
from recommender.api.endpoint import endpoint, json_response
from recommender.runner import asgi
from tests.conftest import ROOT, Api, free_port

JSON = {"content-type": "application/json"}
HISTORY = b'{"user_id": "edge-listener", "listening_history": "tides and lighthouses"}'


def users(api: Api, user_id: str) -> int:
    return api.query("SELECT count(*) FROM users WHERE id = %s", (user_id,))[0][0]


@pytest.mark.service
@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"],
)
def test_a_body_not_declared_as_json_is_refused_so_a_cross_site_form_cannot_write(
    local_api: Api, content_type: str | None
):
    headers = {"content-type": content_type} if content_type else {}
    response = local_api.post("/api/update_user_history", content=HISTORY, headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (415, "unsupported_media_type")
    assert users(local_api, "edge-listener") == 0


@pytest.mark.service
def test_a_utf8_byte_order_mark_is_allowed(local_api: Api):
    response = local_api.post("/api/update_user_history", content=b"\xef\xbb\xbf" + HISTORY, headers=JSON)
    assert response.status_code == 200, response.text
    array = b'\xef\xbb\xbf[{"user_id": "edge-listener", "podcast_id": 1, "event": "click"}]'
    assert local_api.post("/api/feedback", content=array, headers=JSON).json()["results"][0]["created"]


@pytest.mark.service
def test_numbers_are_json_numbers(local_api: Api):
    """2.0 is an integer (as JSON Schema says); a number too long to read is named as such."""
    body = {"user_id": "edge-listener", "podcast_id": 1.0, "event": "click"}
    assert local_api.post("/api/update_user_history", content=HISTORY, headers=JSON).status_code == 200
    assert local_api.post("/api/feedback", body).status_code == 201
    huge = b'{"user_id": "edge-listener", "podcast_id": ' + b"9" * 5001 + b', "event": "click"}'
    response = local_api.post("/api/feedback", content=huge, headers=JSON)
    assert response.status_code == 400 and "number out of range" in response.json()["error"]["message"]
    fraction = local_api.post("/api/feedback", {**body, "podcast_id": 1.5})
    assert fraction.status_code == 400 and "podcast_id" in fraction.json()["error"]["message"]


@pytest.mark.service
def test_a_path_parameter_is_named_in_its_error(local_api: Api):
    message = local_api.client.delete("/api/users/a%01b").json()["error"]["message"]
    assert message.startswith("user_id:") and "body" not in message


@pytest.mark.service
def test_head_answers_as_get_without_a_body(local_api: Api):
    head = local_api.client.head("/api/health")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
    assert local_api.client.head("/api/update_user_history").status_code == 405


@pytest.fixture
def sink() -> Iterator[int]:
    """The port of a runner serving one route, without a database: POST /api/sink counts the bytes."""
    blueprint = Blueprint()

    @endpoint(blueprint, "POST", "sink", auth_level=AuthLevel.ANONYMOUS)
    def count(req: HttpRequest) -> HttpResponse:
        return json_response({"bytes": len(req.get_body())})

    app = FunctionApp()
    app.register_functions(blueprint)
    running = local_runner.serve(app.get_functions(), port=0)
    try:
        yield running.port
    finally:
        running.shutdown()


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One whole response: a server may send its head and its body in separate segments."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096) or pytest.fail(f"connection closed after {received!r}")
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(4096) or pytest.fail(f"connection closed after {head + body!r}")
    return head, body


def test_a_stalled_upload_is_answered_408_not_held_open(monkeypatch: pytest.MonkeyPatch, sink: int):
    monkeypatch.setattr(asgi, "BODY_SECONDS", 1)
    with socket.create_connection(("127.0.0.1", sink), timeout=10) as sock:
        sock.sendall(b'POST /api/sink HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"half":')
        started = time.monotonic()
        head, body = read_response(sock)
    assert head.startswith(b"HTTP/1.1 408") and b"request_timeout" in body
    assert time.monotonic() - started < 5


def test_an_idle_keep_alive_connection_outlives_the_clients_expiry(sink: int):
    """httpx drops idle connections after 5 s; a server closing them at the same moment races its
    reuse (a reset, no answer). The runner keeps them longer, so the client closes first."""
    request = (
        b"POST /api/sink HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    with socket.create_connection(("127.0.0.1", sink), timeout=10) as sock:
        sock.sendall(request)
        assert read_response(sock)[0].startswith(b"HTTP/1.1 200")
        time.sleep(httpx.Limits().keepalive_expiry + 1)
        sock.sendall(request)
        assert read_response(sock)[0].startswith(b"HTTP/1.1 200")


@pytest.mark.service
def test_the_runner_serves_while_the_database_is_down_at_start(tmp_path):
    """It answers 503 with Retry-After until the database is back, rather than exit with a traceback."""
    env = {
        **os.environ,
        "DATABASE_URL": "postgresql://127.0.0.1:9/none?connect_timeout=1",
        "AI_PROVIDER": "local",
    }
    port = free_port()
    with (tmp_path / "down.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "local_runner.py", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        answer = None
        for _ in range(100):
            with contextlib.suppress(httpx.TransportError):
                answer = httpx.get(f"http://127.0.0.1:{port}/api/recommend_podcasts?user_id=x", timeout=10)
                break
            time.sleep(0.2)
        assert answer is not None and answer.status_code == 503, (tmp_path / "down.log").read_text()
        assert answer.json()["error"]["code"] == "database_unavailable" and answer.headers["retry-after"]
        assert process.poll() is None
        assert "Traceback" not in (tmp_path / "down.log").read_text()
    finally:
        process.terminate()
        process.wait(timeout=20)
