"""Shared fixtures: a real embedded Postgres, the fake OpenAI server and the local runner.

Nothing here mocks the database. The one thing replaced is the remote AI service, by
`FakeOpenAIServer`, so the real `openai` client runs over HTTP.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest
from psycopg2.extensions import make_dsn, parse_dsn

import config
from recommender.model import variants
from tests.fake_openai_server import FakeOpenAIServer

ROOT = Path(__file__).resolve().parent.parent
_marked_service = False  # whether the test being set up is marked `service` (see `run_api`)
SAMPLE_DIR = ROOT / "sample_data"
FAKE_API_KEY = "sk-test-secret-do-not-leak-4242"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Runs before the test's fixtures are set up: `run_api` checks the test is marked `service`,
    so `pytest -m "not service"` (the quick loop) never starts the service."""
    global _marked_service
    _marked_service = item.get_closest_marker("service") is not None


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded Postgres with pgvector for the whole session; yields its admin DSN."""
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


def fresh_database(admin_dsn: str, name: str, template: str | None = None) -> str:
    """Drop and create database `name` on the server of `admin_dsn`, empty or as a copy of
    `template` (which nobody may be connected to); returns its DSN."""
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    conn.close()
    return make_dsn(**{**parse_dsn(admin_dsn), "dbname": name})


@pytest.fixture(scope="session")
def create_database(postgres: str):
    """Make a fresh, empty database and return its DSN."""
    return functools.partial(fresh_database, postgres)


def query(dsn: str, sql: str, params: Any = None) -> list[tuple]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(dimensions=384) as server:
        yield server


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    """A fake AI server of the module's own, for tests that break it for longer than one test."""
    with FakeOpenAIServer(dimensions=384) as server:
        yield server


@pytest.fixture
def fresh_fake(fake: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    """The module's own fake AI server, with counters and failures reset around this test."""
    fake.reset()
    yield fake
    fake.reset()


@pytest.fixture(scope="module")
def api(request: pytest.FixtureRequest, create_database, fake, tmp_path_factory) -> Iterator[Api]:
    """The module's own service, on the `openai` provider against its own fake AI server, with the
    module's `SETTINGS` on top; its database and log are named after the module."""
    name = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    env = openai_env(fake, **getattr(request.module, "SETTINGS", {}))
    with run_api(create_database(name), env, tmp_path_factory.mktemp("logs") / f"{name}.log") as api:
        yield api


@pytest.fixture
def ai(fake_openai: FakeOpenAIServer) -> FakeOpenAIServer:
    """The fake AI server, with counters and failures reset for this test."""
    fake_openai.reset()
    return fake_openai


def wait_for(predicate, timeout: float = 30.0) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api:
    """A running local runner: its base URL, an HTTP client, its database and its log."""

    def __init__(self, base_url: str, dsn: str, log_path: Path) -> None:
        self.base_url, self.dsn, self.log_path = base_url, dsn, log_path
        self.client = httpx.Client(base_url=base_url, timeout=60)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        if body is not None:
            kwargs["json"] = body
        return self.client.post(path, **kwargs)

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        return query(self.dsn, sql, params)

    def log(self) -> str:
        return self.log_path.read_text()


def openai_env(fake: FakeOpenAIServer, **settings: str) -> dict[str, str]:
    """Settings of a runner on the `openai` provider talking to `fake`, plus `settings`."""
    return {
        "AI_PROVIDER": "openai",
        "OPENAI_BASE_URL": fake.openai_base_url,
        "OPENAI_API_KEY": FAKE_API_KEY,
        "OPENAI_EMBEDDING_MODEL": "fake-embedding",
        "OPENAI_CHAT_MODEL": "fake-chat",
        "EMBEDDING_DIMENSIONS": "384",
        **settings,
    }


@contextmanager
def run_api(dsn: str, env: dict[str, str], log_path: Path, *args: str) -> Iterator[Api]:
    """Start `local_runner.py --port N *args` in a subprocess, as a user would, and wait until it
    answers; the Api keeps the `process`."""
    assert _marked_service, "a test that starts the service must be marked `service`"
    port = free_port()
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_", "AI_"))},
        "DATABASE_URL": dsn,
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "local_runner.py"), "--port", str(port), *args],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    api = Api(f"http://127.0.0.1:{port}", dsn, log_path)
    api.process = process
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"local runner exited:\n{log_path.read_text()}")
            try:
                if api.get("/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"local runner did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield api
    finally:
        process.terminate()
        process.wait(timeout=20)
        api.client.close()


_INDEX = """
import json, function_app
functions = {}
for f in function_app.app.get_functions():
    t = f.get_trigger()
    functions[f.get_function_name()] = {
        "type": t.type,
        "route": getattr(t, "route", None),
        "auth": getattr(getattr(t, "auth_level", None), "name", None),
        "methods": sorted(str(getattr(m, "value", m)) for m in getattr(t, "methods", None) or []),
        "schedule": getattr(t, "schedule", None),
    }
print(json.dumps(functions))
"""


def app_functions() -> dict[str, dict[str, Any]]:
    """What Azure's indexer and `func start` read: `function_app.app.get_functions()`, in a fresh
    interpreter as they run it (an app lets its functions be read once): by name, each function's
    trigger type, route, auth level, methods and schedule."""
    done = subprocess.run(
        [sys.executable, "-c", _INDEX], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def user_in(variant: str) -> str:
    """A fresh user id that the default A/B split puts in `variant`."""
    split = variants.parse_split(config.Settings.model_fields["ab_split"].default)
    while True:
        user_id = f"user-{uuid.uuid4().hex[:8]}"
        if variants.assign_variant(user_id, split, "v1").name == variant:
            return user_id


def wait_for_model(api: Api) -> None:
    """Until the worker has folded every event and listen into the collaborative model."""

    def fresh() -> bool:
        state = api.get("/api/health").json()["collaborative"]
        return state["refreshed_at"] is not None and state["events_since_refresh"] == 0

    assert wait_for(fresh, timeout=40), api.get("/api/health").json()["collaborative"]


def seed_sample_catalog(api: Api) -> dict[str, int]:
    """Post the sample catalog and users through the API; returns podcast ids by external_id."""
    ids = {}
    for item in json.loads((SAMPLE_DIR / "podcasts.json").read_text()):
        response = api.post("/api/add_podcast", item)
        assert response.status_code == 201, response.text
        ids[item["external_id"]] = response.json()["id"]
    for user in json.loads((SAMPLE_DIR / "users.json").read_text()):
        response = api.post(
            "/api/update_user_history",
            {
                "user_id": user["user_id"],
                "name": user["name"],
                "listening_history": user["listening_history"],
                "listened_podcast_ids": [ids[e] for e in user["listened_external_ids"]],
            },
        )
        assert response.status_code == 200, response.text
    return ids


@contextmanager
def sample_service(dsn: str, log_path: Path) -> Iterator[Api]:
    """The service as `make run` starts it: offline `local` provider, sample catalog loaded."""
    env = {"AI_PROVIDER": "local", "COLLAB_REFRESH_SECONDS": "0"}
    with run_api(dsn, env, log_path) as api:
        api.sample_ids = seed_sample_catalog(api)
        yield api


@pytest.fixture(scope="session")
def local_api(create_database, tmp_path_factory) -> Iterator[Api]:
    """The sample service shared by the tests of every module."""
    with sample_service(create_database("local_api"), tmp_path_factory.mktemp("logs") / "local.log") as api:
        yield api


@pytest.fixture(scope="session")
def openai_api(create_database, fake_openai, tmp_path_factory) -> Iterator[Api]:
    """The service on the `openai` provider, talking to the fake server over HTTP; reasons are
    written only when a request waits for them."""
    dsn = create_database("openai_api")
    env = {
        "AI_PROVIDER": "openai",
        "OPENAI_BASE_URL": fake_openai.openai_base_url,
        "OPENAI_API_KEY": FAKE_API_KEY,
        "OPENAI_EMBEDDING_MODEL": "fake-embedding",
        "OPENAI_CHAT_MODEL": "fake-chat",
        "EMBEDDING_DIMENSIONS": "384",
        "AI_MAX_RETRIES": "2",
        "AI_TIMEOUT_SECONDS": "5",
        "COLLAB_REFRESH_SECONDS": "0",
        "PREPARE_PAGES": "false",  # nothing calls the LLM behind the tests' backs (test_written_ahead.py)
    }
    with run_api(dsn, env, tmp_path_factory.mktemp("logs") / "openai.log") as api:
        yield api
