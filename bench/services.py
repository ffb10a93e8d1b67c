"""Start the service under test (`local_runner.py`) and the naive baseline as subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import httpx

import db_utils
from bench.catalog import EMBEDDING_MODEL
from bench.db import WORK_DIR

ROOT = db_utils.PROJECT_DIR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ai_env(ai_base_url: str, dims: int) -> dict[str, str]:
    """Settings pointing the `openai` provider at the fake server."""
    return {
        "AI_PROVIDER": "openai",
        "OPENAI_BASE_URL": ai_base_url,
        "OPENAI_API_KEY": "x",
        "OPENAI_EMBEDDING_MODEL": EMBEDDING_MODEL,
        "OPENAI_CHAT_MODEL": "fake-chat",
        "EMBEDDING_DIMENSIONS": str(dims),
    }


@contextmanager
def process(args: list[str], env: dict[str, str], ready_path: str, name: str) -> Iterator[str]:
    """Run `args` with `--port`, wait until `ready_path` answers, yield the base URL, stop it."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_", "AI_"))}
    log_path = WORK_DIR / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, *args, "--port", str(port)],
            cwd=ROOT,
            env={**clean, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited; see {log_path}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(base_url + ready_path, timeout=5).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start within 120 s; see {log_path}")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


WORKERS = "2"  # processes serving HTTP, as `make run` starts them


def ours(dsn: str, ai_base_url: str, dims: int, name: str, **settings: str) -> AbstractContextManager[str]:
    """`local_runner.py` serving `function_app.app`, as `make run` does, on the `openai` provider."""
    env = {"DATABASE_URL": dsn, "DB_POOL_MAX": "24", **ai_env(ai_base_url, dims), **settings}
    return process([str(ROOT / "local_runner.py"), "--workers", WORKERS], env, "/api/health", name)


def baseline(dsn: str, ai_base_url: str, dims: int, name: str) -> AbstractContextManager[str]:
    """`bench/naive_app.py`, served by the same local runner code in one process, with a thread
    for each of up to 16 clients: it waits on the LLM, not the CPU, so this is its best setting."""
    env = {"DATABASE_URL": dsn, "PYTHON_THREADPOOL_THREAD_COUNT": "16", **ai_env(ai_base_url, dims)}
    return process(["-m", "bench.naive_app"], env, "/api/naive_recommend", name)


def local(dsn: str, name: str, **settings: str) -> AbstractContextManager[str]:
    """`local_runner.py` in one process on the offline `local` provider (the real-data replay)."""
    env = {"DATABASE_URL": dsn, "AI_PROVIDER": "local", **settings}
    return process([str(ROOT / "local_runner.py")], env, "/api/health", name)
