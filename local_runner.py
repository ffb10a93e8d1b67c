"""Serve the HTTP functions registered on `function_app.app` over real HTTP, like `func start`.

For machines without Azure Functions Core Tools (`make run`). uvicorn speaks HTTP and the ASGI
adapter of `recommender/runner/asgi.py` calls the functions as the Azure Python worker does; what
uvicorn cannot parse (e.g. `Content-Length: abc` or `-1`) gets uvicorn's plain-text 400 and the
connection is closed. With `--workers N`, N processes serve HTTP on one socket, and the timer
functions run in only one of them per database (`recommender/runner/background.py`).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass

import uvicorn
from azure.functions.decorators.function_app import Function
from uvicorn.supervisors import Multiprocess

import db_utils
from config import LOG_FORMAT, get_settings
from recommender.api.endpoint import CREDENTIAL_PARAMETER
from recommender.runner.asgi import Adapter, http_routes
from recommender.runner.background import timers

BACKLOG = 2048  # connections the kernel queues before refusing more
GRACEFUL_SHUTDOWN_SECONDS = 10  # on SIGTERM, requests in flight get this long to finish
# An idle keep-alive connection stays open this long, as under the Functions host (Kestrel's 130 s).
# uvicorn's 5 s equals httpx's own idle expiry: a client reusing a connection the instant the
# server closed it got a reset and no answer (2 requests in a 10-minute soak).
KEEP_ALIVE_SECONDS = 130


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
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
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


# The value of a query parameter that carries a credential (`?code=`, *key*, *token*, ...), which
# the access log must not show.
SECRET_PARAMETER = re.compile(rf"([?&](?:{CREDENTIAL_PARAMETER})=)[^&\s\"]*", re.IGNORECASE)


class RedactSecrets(logging.Filter):
    """Writes the access log's request lines with the values of key parameters replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                SECRET_PARAMETER.sub(r"\1[redacted]", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    for noisy in ("httpx", "httpx2", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in access.filters):
        access.addFilter(RedactSecrets())


def create_app() -> Adapter:
    """The app of each `--workers` process: uvicorn imports and calls this in every one."""
    setup_logging()
    from function_app import app

    return Adapter(app.get_functions(), get_settings().max_body_bytes, db_utils.release_embedded_database)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--workers", type=int, default=1, help="processes serving HTTP (default 1)")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    setup_logging()

    from function_app import app
    from recommender.service.database import ensure_database

    try:
        ensure_database()
    except db_utils.SchemaMismatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except db_utils.UNAVAILABLE as exc:  # serve anyway: requests answer 503 until it is back
        print(f"warning: the database is unreachable ({type(exc).__name__}); serving, 503 until it answers")
    functions = app.get_functions()  # the app lets its functions be read only once
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(
            f"error: cannot listen on {args.host}:{args.port} ({exc.strerror}); choose another port:"
            f" make run PORT={args.port + 1} (or local_runner.py --port {args.port + 1})",
            file=sys.stderr,
        )
        return 2
    host, port = sock.getsockname()[:2]
    settings = get_settings()
    if not ipaddress.ip_address(host).is_loopback and not (
        settings.local_function_key and settings.local_admin_key
    ):
        print(
            f"warning: listening on {host} without LOCAL_FUNCTION_KEY and LOCAL_ADMIN_KEY: anyone who can"
            " reach this port may call every route, the operator's included",
            file=sys.stderr,
        )
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
