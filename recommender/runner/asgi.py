"""An ASGI app serving the HTTP functions registered on `function_app.app`, like `func start`.

Routes, methods and the route prefix are read from the app and `host.json`, never declared twice.
Each request becomes an `azure.functions.HttpRequest` and the `HttpResponse` comes back, the sync
function running on a thread pool, as the Azure Python worker does. What the adapter answers
itself (no such route, wrong method, a body over MAX_BODY_BYTES) is JSON in the app's error shape.
Its lifespan runs the timer functions (`background.py`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, unquote

import azure.functions as func
from azure.functions.decorators.function_app import Function

from config import PROJECT_DIR, get_settings
from recommender.runner.background import JOIN_SECONDS, run_background, timers

HOST_JSON = PROJECT_DIR / "host.json"
BODY_SECONDS = 30  # a body still arriving after this long is a stalled upload: 408, not held open

log = logging.getLogger("local_runner")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
Reply = tuple[int, Headers, bytes]


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    arg_name: str
    handler: Callable[..., func.HttpResponse]
    auth_level: str  # ANONYMOUS | FUNCTION | ADMIN, as the Functions host checks it


def route_prefix() -> str:
    try:
        http = json.loads(HOST_JSON.read_text()).get("extensions", {}).get("http", {})
    except FileNotFoundError:
        http = {}
    return http.get("routePrefix", "api").strip("/")


def compile_route(prefix: str, template: str) -> re.Pattern[str]:
    """`podcasts/{id}`, `{id:int}` or an optional last `{part?}` → a regex with named groups,
    matched against the raw (still percent-encoded) path, so `%2F` stays inside its segment."""
    pattern = ""
    for part in re.split(r"(\{[^}]+\})", "/".join(p for p in (prefix, template.strip("/")) if p)):
        param = re.fullmatch(r"\{(\w+)(?::[^}?]+)?(\?)?\}", part)
        if param is None:
            pattern += re.escape(part)
        elif param.group(2):
            pattern = pattern.removesuffix("/") + f"(?:/(?P<{param.group(1)}>[^/]+))?"
        else:
            pattern += f"(?P<{param.group(1)}>[^/]+)"
    return re.compile(f"^/{pattern}/?$", re.IGNORECASE)


def http_routes(functions: list[Function]) -> list[Route]:
    prefix = route_prefix()
    routes = []
    for function in functions:
        trigger = function.get_trigger()
        if trigger is None or trigger.type != "httpTrigger":
            continue
        methods = frozenset(
            str(getattr(m, "value", m)).upper() for m in (trigger.methods or [])
        ) or frozenset(m.value for m in func.HttpMethod)
        template = trigger.route or function.get_function_name()
        routes.append(
            Route(
                name=function.get_function_name(),
                path="/" + "/".join(p for p in (prefix, template) if p),
                pattern=compile_route(prefix, template),
                methods=methods,
                arg_name=trigger.name,
                handler=function.get_user_function(),
                auth_level=str(getattr(trigger.auth_level, "name", trigger.auth_level) or "FUNCTION").upper(),
            )
        )
    return routes


class ClientGone(Exception):
    """The client disconnected before it sent the whole body."""


def error(status: int, code: str, message: str, *headers: tuple[bytes, bytes]) -> Reply:
    """An answer in the app's error shape, `{"error": {"code", "message"}}`."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return status, [(b"content-type", b"application/json; charset=utf-8"), *headers], body


def request_headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def reply(response: func.HttpResponse) -> Reply:
    headers = {
        name.lower(): value
        for name, value in response.headers.items()
        if name.lower() not in {"content-length", "connection", "transfer-encoding"}
    }
    headers.setdefault("content-type", f"{response.mimetype}; charset={response.charset}")
    encoded = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    return response.status_code, encoded, response.get_body()


class Adapter:
    """An ASGI app serving the HTTP functions of `functions`; its lifespan runs their timers."""

    def __init__(
        self, functions: list[Function], max_body_bytes: int, on_shutdown: Callable[[], None] | None = None
    ) -> None:
        self.routes = http_routes(functions)
        self.on_shutdown = on_shutdown  # once the timers and requests are done
        self.timers = timers(functions)
        self.max_body_bytes = max_body_bytes
        # Keys as the Functions host checks them; unset, every route is open (like `func start`).
        settings = get_settings()
        self.function_key, self.admin_key = settings.local_function_key, settings.local_admin_key
        # The Azure Python worker's pool: PYTHON_THREADPOOL_THREAD_COUNT threads, else Python's default.
        threads = settings.python_threadpool_thread_count or None
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="function")
        self.stop = threading.Event()
        self.background = threading.Thread(
            target=run_background, args=(self.timers, self.stop), name="background", daemon=True
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        try:
            status, headers, body = await self.respond(scope, receive)
        except ClientGone:
            return
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        if self.timers:
            self.background.start()
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        self.stop.set()
        if self.timers:
            await asyncio.to_thread(self.background.join, JOIN_SECONDS + 2)
        self.executor.shutdown(wait=False)
        if self.on_shutdown:
            self.on_shutdown()
        await send({"type": "lifespan.shutdown.complete"})

    async def respond(self, scope: Scope, receive: Receive) -> Reply:
        arrived = time.time()
        raw_path = scope["raw_path"].decode("latin-1")
        matches = [(route, m) for route in self.routes if (m := route.pattern.match(raw_path))]
        if not matches:
            return error(404, "not_found", f"no function serves {scope['path']}")
        allowed = [(route, m) for route, m in matches if scope["method"] in route.methods]
        if not allowed:
            methods = ", ".join(sorted({method for route, _ in matches for method in route.methods}))
            return error(405, "method_not_allowed", f"use {methods}", (b"allow", methods.encode()))
        route, match = allowed[0]
        headers = request_headers(scope)
        headers["x-request-start"] = f"{arrived:.3f}"  # the budget counts from here (api/endpoint.py)
        query = scope["query_string"].decode("utf-8", "replace")
        if not self.authorized(route.auth_level, headers.get("x-functions-key") or query_code(query)):
            return error(401, "unauthorized", "this route needs a key (x-functions-key header or ?code=)")
        try:
            async with asyncio.timeout(BODY_SECONDS):
                body = await self.read_body(headers.get("content-length"), receive)
        except TimeoutError:
            return error(408, "request_timeout", f"the body did not arrive within {BODY_SECONDS} s")
        if body is None:
            return error(413, "body_too_large", f"the body is over {self.max_body_bytes} bytes")
        url = f"{scope['scheme']}://{headers.get('host', 'localhost')}{raw_path}"
        request = func.HttpRequest(
            method=scope["method"],
            url=f"{url}?{query}" if query else url,
            headers=headers,
            params=dict(parse_qsl(query, keep_blank_values=True)),
            route_params={name: unquote(v) for name, v in match.groupdict().items() if v is not None},
            body=body,
        )
        call = partial(route.handler, **{route.arg_name: request})
        try:
            response = await asyncio.get_running_loop().run_in_executor(self.executor, call)
        except Exception:
            log.exception("function %s failed", route.name)
            return error(500, "internal_error", "unexpected server error; see the logs")
        return reply(response)

    def authorized(self, level: str, key: str) -> bool:
        """Function routes take the function or the admin key, admin routes the admin key only."""
        if level == "ANONYMOUS" or not (self.function_key or self.admin_key):
            return True
        accepted = [self.admin_key] + ([self.function_key] if level == "FUNCTION" else [])
        return any(k and hmac.compare_digest(key.encode(), k.encode()) for k in accepted)

    async def read_body(self, content_length: str | None, receive: Receive) -> bytes | None:
        """The body, sent with a Content-Length (which uvicorn has checked is digits) or chunked;
        None once it is over max_body_bytes, before any of it is read if the Content-Length says so.
        Whatever the client still sends is then discarded by uvicorn."""
        if content_length is not None and int(content_length) > self.max_body_bytes:
            return None
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                return bytes(body)


def query_code(query: str) -> str:
    return dict(parse_qsl(query)).get("code", "")
