"""Serve the HTTP functions registered on `function_app.app` over real HTTP, like `func start`.

For machines without Azure Functions Core Tools. Routes, methods and the route prefix are read
from the app and `host.json`, never declared twice. Requests and responses are converted to and
from `azure.functions.HttpRequest` / `HttpResponse`, and each request runs on its own thread, as
the Azure Python worker runs sync functions.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
from azure.functions.decorators.function_app import Function
from azure.functions.timer import TimerRequest

from config import get_settings

HOST_JSON = Path(__file__).resolve().parent / "host.json"


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    arg_name: str
    handler: Callable[..., func.HttpResponse]


def route_prefix() -> str:
    try:
        http = json.loads(HOST_JSON.read_text()).get("extensions", {}).get("http", {})
    except FileNotFoundError:
        http = {}
    return http.get("routePrefix", "api").strip("/")


def compile_route(prefix: str, template: str) -> re.Pattern[str]:
    """`podcasts/{id}`, `{id:int}` or an optional last `{part?}` → a regex with named groups."""
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
    log = logging.getLogger("local_runner")
    while not stop.is_set():
        wake.wait(timer.interval_seconds)
        wake.clear()
        if stop.is_set():
            return
        try:
            timer.handler(**{timer.arg_name: TimerRequest()})
        except Exception:
            log.exception("timer function %s failed", timer.name)


def make_handler(routes: list[Route]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle's algorithm the second waits for
        # the client's delayed ACK (~40 ms) on a kept-alive connection.
        disable_nagle_algorithm = True

        def _dispatch(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            for route in routes:
                match = route.pattern.match(url.path)
                if match is None:
                    continue
                if self.command not in route.methods:
                    return self._send(405, b'{"error": {"code": "method_not_allowed"}}', {})
                request = func.HttpRequest(
                    method=self.command,
                    url=f"http://{self.headers.get('Host', 'localhost')}{self.path}",
                    headers=dict(self.headers.items()),
                    params=dict(parse_qsl(url.query, keep_blank_values=True)),
                    route_params={k: v for k, v in match.groupdict().items() if v is not None},
                    body=body,
                )
                response = route.handler(**{route.arg_name: request})
                headers = dict(response.headers)
                headers.setdefault("Content-Type", f"{response.mimetype}; charset={response.charset}")
                return self._send(response.status_code, response.get_body(), headers)
            self._send(404, b'{"error": {"code": "not_found", "message": "no such route"}}', {})

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            headers.setdefault("Content-Type", "application/json")
            for key, value in headers.items():
                if key.lower() not in {"content-length", "connection"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

        def log_message(self, format: str, *args: object) -> None:
            logging.getLogger("local_runner").info("%s %s", self.address_string(), format % args)

    return Handler


@dataclass
class Running:
    server: ThreadingHTTPServer  # `server.server_address` tells the port bound
    stop: threading.Event
    wakes: list[threading.Event]

    def wake_timers(self) -> None:
        """Run every timer function now (e.g. because the database says there is work)."""
        for wake in self.wakes:
            wake.set()

    def shutdown(self) -> None:
        self.stop.set()
        self.wake_timers()
        self.server.shutdown()


def serve(functions: list[Function], host: str = "127.0.0.1", port: int = 7071) -> Running:
    """Serve the HTTP functions and run the timer functions, all in daemon threads."""
    server = ThreadingHTTPServer((host, port), make_handler(http_routes(functions)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="local-runner", daemon=True).start()
    running = Running(server, threading.Event(), [])
    for timer in timers(functions):
        wake = threading.Event()
        running.wakes.append(wake)
        threading.Thread(
            target=run_timer, args=(timer, running.stop, wake), name=timer.name, daemon=True
        ).start()
    return running


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpx2", "pgserver", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import db_utils
    import recommender
    from db_utils import SchemaMismatchError
    from function_app import app

    try:
        recommender.ensure_database()
    except SchemaMismatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    functions = app.get_functions()  # the app lets its functions be read only once
    try:
        running = serve(functions, args.host, args.port)
    except OSError as exc:
        print(
            f"error: cannot listen on {args.host}:{args.port} ({exc.strerror}); try --port", file=sys.stderr
        )
        return 2
    # Catalog changes made anywhere (even plain SQL) notify this channel: run the worker at once.
    listener = (db_utils.CHANGES_CHANNEL, running.wake_timers, running.stop)
    threading.Thread(target=db_utils.listen, args=listener, name="listener", daemon=True).start()
    host, port = running.server.server_address[:2]
    for route in http_routes(functions):
        print(f"  {route.name}: http://{host}:{port}{route.path}")
    for timer in timers(functions):
        print(f"  {timer.name}: every {timer.interval_seconds:g} s")
    print(f"Serving on http://{host}:{port} (Ctrl+C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        running.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
