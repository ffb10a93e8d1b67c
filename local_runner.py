"""Serve the HTTP functions registered on `function_app.app` over real HTTP, like `func start`.

For machines without Azure Functions Core Tools. Routes, methods and the route prefix are read
from the app and `host.json`, never declared twice. uvicorn speaks HTTP; a small ASGI adapter
converts each request to an `azure.functions.HttpRequest` and the `HttpResponse` back, running the
sync function on a thread pool, as the Azure Python worker does. What the adapter answers itself
(no such route, wrong method, a body over MAX_BODY_BYTES) is JSON in the app's error shape; what
uvicorn cannot parse (e.g. `Content-Length: abc` or `-1`) gets uvicorn's plain-text 400 and the
connection is closed. With `--workers N`, N processes serve HTTP on one socket, and the timer
functions run in only one of them per database: the one holding a Postgres advisory lock.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import os
import re
import select
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import azure.functions as func
import psycopg2
import uvicorn
from azure.functions.decorators.function_app import Function
from azure.functions.timer import TimerRequest
from uvicorn.supervisors import Multiprocess

import db_utils
from config import get_settings

HOST_JSON = Path(__file__).resolve().parent / "host.json"
BACKLOG = 2048  # connections the kernel queues before refusing more
GRACEFUL_SHUTDOWN_SECONDS = 10  # on SIGTERM, requests in flight get this long to finish
BACKGROUND_LOCK_ID = 4_711_003  # pg_advisory_lock key: one process per database runs the timers
LOCK_RETRY_SECONDS = 3.0  # how often a process without the lock tries to take it over
JOIN_SECONDS = 5.0  # how long stopping waits for a timer function that is running

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


@dataclass(frozen=True)
class Timer:
    name: str
    interval_seconds: float
    arg_name: str
    handler: Callable[..., None]


def schedule_interval(schedule: str) -> float:
    """Seconds between runs for the NCRONTAB forms `*/N * * * * *`, `0 */N * * * *` and
    `0 0 */N * * *` (`*` for N = 1); a `%SETTING%` schedule is read from the settings first."""
    schedule = re.sub(r"%(\w+)%", lambda m: str(getattr(get_settings(), m[1].lower())), schedule)
    fields = schedule.split()
    for unit, position in ((1.0, 0), (60.0, 1), (3600.0, 2)):
        if (
            len(fields) == 6
            and fields[:position] == ["0"] * position
            and fields[position + 1 :] == ["*"] * (5 - position)
        ):
            every = fields[position]
            if every == "*" or every.startswith("*/"):
                return unit * float(every[2:] or 1)
    return 60.0


def timers(functions: list[Function]) -> list[Timer]:
    return [
        Timer(f.get_function_name(), schedule_interval(t.schedule), t.name, f.get_user_function())
        for f in functions
        if (t := f.get_trigger()) is not None and t.type == "timerTrigger"
    ]


def run_timer(timer: Timer, stop: threading.Event, wake: threading.Event) -> None:
    """Run the timer function every interval, or at once when `wake` is set."""
    while not stop.is_set():
        wake.wait(timer.interval_seconds)
        wake.clear()
        if stop.is_set():
            return
        try:
            timer.handler(**{timer.arg_name: TimerRequest()})
        except Exception:
            log.exception("timer function %s failed", timer.name)


def run_background(timers: list[Timer], stop: threading.Event) -> None:
    """Run `timers` while this process holds the database's background lock; without it, try
    again every LOCK_RETRY_SECONDS, so another process takes over when the holder stops or dies.

    The lock is session-level, on a connection of its own that also LISTENs for catalog changes."""
    while not stop.is_set():
        try:
            dsn = db_utils.database_url(get_settings())
            with closing(psycopg2.connect(dsn, application_name=f"local-runner-{os.getpid()}")) as conn:
                conn.autocommit = True
                with conn.cursor() as cur:
                    while not stop.is_set():
                        cur.execute("SELECT pg_try_advisory_lock(%s)", (BACKGROUND_LOCK_ID,))
                        if cur.fetchone()[0]:
                            cur.execute(f"LISTEN {db_utils.CHANGES_CHANNEL}")
                            run_timers(conn, timers, stop)
                        else:
                            stop.wait(LOCK_RETRY_SECONDS)
        except psycopg2.Error as exc:
            log.warning("background worker lost its database connection (%s); retrying", type(exc).__name__)
            stop.wait(LOCK_RETRY_SECONDS)


def run_timers(conn: psycopg2.extensions.connection, timers: list[Timer], stop: threading.Event) -> None:
    """Run `timers`, at once when `conn` is notified, until `stop` is set or `conn` breaks."""
    names = ", ".join(timer.name for timer in timers)
    log.info("background worker: this process (pid %d) runs %s", os.getpid(), names)
    done = threading.Event()
    wakes = [threading.Event() for _ in timers]
    threads = [
        threading.Thread(target=run_timer, args=(timer, done, wake), name=timer.name, daemon=True)
        for timer, wake in zip(timers, wakes, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        while not stop.is_set():
            if select.select([conn], [], [], 1.0)[0]:
                conn.poll()  # raises when the connection, and with it the lock, is lost
                if conn.notifies:
                    conn.notifies.clear()
                    for wake in wakes:
                        wake.set()
    finally:
        done.set()
        for wake in wakes:
            wake.set()
        for thread in threads:
            thread.join(JOIN_SECONDS)


class ClientGone(Exception):
    """The client disconnected before it sent the whole body."""


def error(status: int, code: str, message: str, *headers: tuple[bytes, bytes]) -> Reply:
    """An answer in function_app's error shape, `{"error": {"code", "message"}}`."""
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

    def __init__(self, functions: list[Function], max_body_bytes: int) -> None:
        self.routes = http_routes(functions)
        self.timers = timers(functions)
        self.max_body_bytes = max_body_bytes
        # Keys as the Functions host checks them; unset, every route is open (like `func start`).
        self.function_key = os.environ.get("LOCAL_FUNCTION_KEY", "")
        self.admin_key = os.environ.get("LOCAL_ADMIN_KEY", "")
        # The Azure Python worker's pool: PYTHON_THREADPOOL_THREAD_COUNT threads, else Python's default.
        threads = int(os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT") or 0) or None
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
        await send({"type": "http.response.body", "body": body})

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
        await send({"type": "lifespan.shutdown.complete"})

    async def respond(self, scope: Scope, receive: Receive) -> Reply:
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
        query = scope["query_string"].decode("utf-8", "replace")
        if not self.authorized(route.auth_level, headers.get("x-functions-key") or query_code(query)):
            return error(401, "unauthorized", "this route needs a key (x-functions-key header or ?code=)")
        body = await self.read_body(headers.get("content-length"), receive)
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


def server_config(app: Adapter | str, workers: int = 1) -> uvicorn.Config:
    """uvicorn's settings: `app` is an Adapter, or the import string of a factory (`--workers`)."""
    return uvicorn.Config(
        app,
        factory=isinstance(app, str),
        workers=workers,
        http="h11",
        ws="none",
        lifespan="on",
        log_config=None,  # uvicorn logs through the root logger, in the format of setup_logging
        backlog=BACKLOG,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP spelled out: asyncio turns Nagle's algorithm off only on sockets that say so
    # (with it on, each response waits ~40 ms for the client's delayed ACK).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)  # the worker processes serve on it
    return sock


@dataclass
class Running:
    """A server started by `serve` on a thread of this process."""

    server: uvicorn.Server
    thread: threading.Thread
    port: int

    def shutdown(self) -> None:
        self.server.should_exit = True
        self.thread.join()


def serve(
    functions: list[Function], host: str = "127.0.0.1", port: int = 7071, max_body_bytes: int | None = None
) -> Running:
    """Serve `functions` (and run their timers) on a thread of this process; port 0 picks one."""
    limit = get_settings().max_body_bytes if max_body_bytes is None else max_body_bytes
    sock = bind(host, port)
    server = uvicorn.Server(server_config(Adapter(functions, limit)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="local-runner", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.01)
    return Running(server, thread, sock.getsockname()[1])


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpx2", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def create_app() -> Adapter:
    """The app of each `--workers` process: uvicorn imports and calls this in every one."""
    setup_logging()
    from function_app import app

    return Adapter(app.get_functions(), get_settings().max_body_bytes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--workers", type=int, default=1, help="processes serving HTTP (default 1)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    setup_logging()

    import recommender
    from function_app import app

    try:
        recommender.ensure_database()
    except db_utils.SchemaMismatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    functions = app.get_functions()  # the app lets its functions be read only once
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(
            f"error: cannot listen on {args.host}:{args.port} ({exc.strerror}); try --port", file=sys.stderr
        )
        return 2
    host, port = sock.getsockname()[:2]
    for route in http_routes(functions):
        print(f"  {route.name}: http://{host}:{port}{route.path}")
    for timer in timers(functions):
        print(f"  {timer.name}: every {timer.interval_seconds:g} s")
    workers = f"{args.workers} worker processes" if args.workers > 1 else "1 process"
    print(f"Serving on http://{host}:{port} with {workers} (Ctrl+C to stop)", flush=True)
    if args.workers > 1:
        Multiprocess(server_config("local_runner:create_app", args.workers), [sock]).run()
    else:
        uvicorn.Server(server_config(Adapter(functions, get_settings().max_body_bytes))).run([sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
