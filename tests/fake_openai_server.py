"""Deterministic local OpenAI-compatible HTTP server for tests and benchmarks.

Serves embeddings and chat completions on both the OpenAI (``/v1/...``) and the
Azure OpenAI (``/openai/deployments/{deployment}/...``) paths, so the real
``openai`` client can be exercised over real HTTP without network access.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import re
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, cast
from urllib.parse import urlsplit

from tests.fake_model import (
    count_tokens,
    data_text,
    embed_text,
    episodes,
    message_text,
    parse_items,
    summarize,
)

_ROUTE = re.compile(r"^/(?:v1|openai/v1|openai/deployments/[^/]+)/(embeddings|chat/completions)/?$")
_LOG_SIZE = 200

JsonDict = dict[str, Any]
Reply = tuple[int, JsonDict, dict[str, str]]  # status, JSON body, extra headers


def _error(message: str, error_type: str, code: str | None = None) -> JsonDict:
    """OpenAI-style error body."""
    return {"error": {"message": message, "type": error_type, "code": code}}


def _steps(n: int, rate: float) -> bool:
    """Whether the n-th request fails at ``rate``: when ``floor(n * rate)`` steps up."""
    return math.floor(n * rate + 1e-9) > math.floor((n - 1) * rate + 1e-9)


def _bad_request(message: str) -> Reply:
    """400 reply for an invalid request body."""
    return 400, _error(message, "invalid_request_error"), {}


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying a reference to its FakeOpenAIServer."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], fake: FakeOpenAIServer) -> None:
        super().__init__(address, _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    """Routes HTTP requests to the owning FakeOpenAIServer."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each kept-alive answer waits ~40 ms for a delayed ACK

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet."""

    def do_GET(self) -> None:
        """Only POST endpoints exist."""
        self._send(
            404,
            _error(f"Unknown path: {urlsplit(self.path).path}", "invalid_request_error"),
        )

    def do_POST(self) -> None:
        """Dispatch a model request."""
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        route = _ROUTE.match(path)
        if route is None:
            self._send(404, _error(f"Unknown path: {path}", "invalid_request_error"))
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._send(*_bad_request("Body must be a JSON object"))
            return
        fake = cast("_HTTPServer", self.server).fake
        status, payload, headers = fake.respond(route.group(1), path, body)
        self._send(status, payload, headers)

    def _send(self, status: int, payload: JsonDict, headers: dict[str, str] | None = None) -> None:
        """Write a JSON response."""
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class FakeOpenAIServer:
    """Local OpenAI / Azure OpenAI look-alike with failure and latency controls.

    Controls (may be changed while running): ``fail_next``, ``fail_rate``,
    ``chat_fail_rate`` (of chat requests only), ``fail_status``,
    ``chat_delay_seconds``, ``embedding_delay_seconds`` and ``chat_reply``
    (when set, every chat completion answers exactly this text, or what it
    returns for the last user message when it is a function).
    """

    def __init__(self, dimensions: int = 384, host: str = "127.0.0.1", port: int = 0) -> None:
        """Configure the server; call ``start()`` (or use ``with``) to serve."""
        self.dimensions = dimensions
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._log: deque[JsonDict] = deque(maxlen=_LOG_SIZE)
        self.reset()

    def reset(self) -> None:
        """Zero counters and clear failures, delays and the request log."""
        with self._lock:
            self._fail_next = 0
            self.fail_rate = 0.0
            self.chat_fail_rate = 0.0
            self.fail_status = 500
            self.chat_delay_seconds = 0.0
            self.embedding_delay_seconds = 0.0
            self.chat_reply: str | Callable[[str], str] | None = None
            self._model_requests = 0
            self._chat_attempts = 0
            self._embedding_requests = 0
            self._embedding_inputs = 0
            self._chat_requests = 0
            self._failed_requests = 0
            self._summarized: Counter[str] = Counter()
            self._log.clear()

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve in a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("FakeOpenAIServer already started")
        self._httpd = _HTTPServer((self.host, self.port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="fake-openai-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the socket."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        """Start on entering a ``with`` block."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop on leaving a ``with`` block."""
        self.stop()

    @property
    def url(self) -> str:
        """Root URL (also the Azure ``azure_endpoint``), without trailing slash."""
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not running")
        return f"http://{self.host}:{self._httpd.server_port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for ``openai.OpenAI``."""
        return self.url + "/v1"

    # -- controls and counters --------------------------------------------

    @property
    def fail_next(self) -> int:
        """Number of upcoming model requests that will fail."""
        return self._fail_next

    @fail_next.setter
    def fail_next(self, value: int) -> None:
        with self._lock:
            self._fail_next = value

    @property
    def embedding_requests(self) -> int:
        """Successful embedding requests."""
        return self._embedding_requests

    @property
    def embedding_inputs(self) -> int:
        """Texts embedded by successful embedding requests."""
        return self._embedding_inputs

    @property
    def chat_requests(self) -> int:
        """Successful chat completion requests."""
        return self._chat_requests

    @property
    def failed_requests(self) -> int:
        """Model requests answered with a simulated failure."""
        return self._failed_requests

    @property
    def summarized(self) -> dict[str, int]:
        """How many times each episode title was summarized (a batched summary request's episodes)."""
        with self._lock:
            return dict(self._summarized)

    @property
    def requests(self) -> list[JsonDict]:
        """Last received JSON bodies (with ``path`` added), oldest first."""
        with self._lock:
            return list(self._log)

    # -- request handling --------------------------------------------------

    def respond(self, endpoint: str, path: str, body: JsonDict) -> Reply:
        """Answer one model request (called from the HTTP handler threads)."""
        with self._lock:
            self._log.append({**body, "path": path})
            failed = self._take_failure(endpoint)
            status = self.fail_status
        if failed:
            # retry-after-ms keeps SDK retries fast (honoured for any status).
            return (
                status,
                _error("simulated failure", "server_error"),
                {"retry-after-ms": "1"},
            )
        if endpoint == "embeddings":
            return self._embeddings(body)
        return self._chat(body)

    def _take_failure(self, endpoint: str) -> bool:
        """Decide (under the lock) whether the current request fails.

        ``fail_rate`` is deterministic: request n fails when ``floor(n * rate)``
        steps up, so 0.5 fails every second request; ``chat_fail_rate`` the
        same over chat requests only (embeddings unaffected).
        """
        self._model_requests += 1
        if endpoint == "chat/completions":
            self._chat_attempts += 1
        if self._fail_next > 0:
            self._fail_next -= 1
            failed = True
        else:
            failed = _steps(self._model_requests, self.fail_rate) or (
                endpoint == "chat/completions" and _steps(self._chat_attempts, self.chat_fail_rate)
            )
        self._failed_requests += int(failed)
        return failed

    def _embeddings(self, body: JsonDict) -> Reply:
        """Embeddings response (float lists or base64 float32 little-endian)."""
        raw_input = body.get("input")
        texts = [raw_input] if isinstance(raw_input, str) else raw_input
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return _bad_request("input must be a string or a non-empty list of strings")
        dimensions = body.get("dimensions") or self.dimensions
        if not isinstance(dimensions, int) or dimensions <= 0:
            return _bad_request("dimensions must be a positive integer")
        if self.embedding_delay_seconds > 0:
            time.sleep(self.embedding_delay_seconds)
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector = embed_text(text, dimensions)
            embedding: list[float] | str = (
                base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(count_tokens(t) for t in texts)
        with self._lock:
            self._embedding_requests += 1
            self._embedding_inputs += len(texts)
        payload = {
            "object": "list",
            "data": data,
            "model": body.get("model", "fake-embedding"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return 200, payload, {}

    def _chat(self, body: JsonDict) -> Reply:
        """Chat completion: ``chat_reply`` if set; in JSON mode, summaries of ``episodes`` or
        reasons for ``items``; else a summary of the (JSON data) user message."""
        messages = body.get("messages")
        if not isinstance(messages, list):
            return _bad_request("messages must be a list")
        messages = [m for m in messages if isinstance(m, dict)]
        user_texts = [message_text(m.get("content")) for m in messages if m.get("role") == "user"]
        last_user = user_texts[-1] if user_texts else ""
        response_format = body.get("response_format")
        json_mode = isinstance(response_format, dict) and response_format.get("type") in (
            "json_object",
            "json_schema",
        )
        if callable(self.chat_reply):
            content = self.chat_reply(last_user)
        elif self.chat_reply is not None:
            content = self.chat_reply
        elif json_mode and episodes(last_user):
            with self._lock:
                self._summarized.update(str(e.get("title", "")) for e in episodes(last_user))
            summaries = [
                {"id": e["id"], "summary": summarize(f"{e.get('title', '')}. {e.get('transcript', '')}")}
                for e in episodes(last_user)
            ]
            content = json.dumps({"summaries": summaries})
        elif json_mode:
            reasons = [
                {
                    "podcast_id": item["podcast_id"],
                    "reason": f"Picked for you: {item['title']}",
                }
                for item in parse_items(last_user)
            ]
            content = json.dumps({"reasons": reasons})
        else:
            content = summarize(data_text(last_user))
        if self.chat_delay_seconds > 0:
            time.sleep(self.chat_delay_seconds)
        with self._lock:
            self._chat_requests += 1
            number = self._chat_requests
        prompt_tokens = sum(count_tokens(message_text(m.get("content"))) for m in messages)
        completion_tokens = count_tokens(content)
        payload = {
            "id": f"chatcmpl-fake-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-chat"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return 200, payload, {}


def main() -> None:
    """Run the fake server standalone until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--dimensions", type=int, default=384)
    parser.add_argument("--chat-delay-ms", type=float, default=0.0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeOpenAIServer(dimensions=args.dimensions, host=args.host, port=args.port)
    server.chat_delay_seconds = args.chat_delay_ms / 1000
    server.fail_rate = args.fail_rate
    with server:
        print(f"OpenAI base_url: {server.openai_base_url}", flush=True)
        print(f"Azure endpoint:  {server.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
