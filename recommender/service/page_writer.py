"""The page writer: one thread per serving process prepares the next page of listeners queued in
`pages_due` (`pages.prepare`, `pages.finish`), one page at a time, LLM calls on a small pool.

Its work is speculative (the listener may not come back), so it must not crowd out requests: when
they keep every core busy it falls behind, and those listeners' pages are computed on their request,
which costs less than computing them ahead and storing them (bench/findings.md).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import db_utils
from config import get_settings
from recommender import store
from recommender.service.pages import Page, finish, prepare

log = logging.getLogger(__name__)

IDLE_SECONDS = 30.0  # the writer looks at the queue this often when nothing woke it
RETRY_SECONDS = 5.0  # after the database failed it
MIN_PAUSE_SECONDS = 0.05  # between looks at the queue while pages are due or every slot is busy


_wake = threading.Event()
_writer: threading.Thread | None = None
_writer_lock = threading.Lock()
_next_look = math.inf  # when the writer looks at the queue next (time.monotonic); inf while it looks


def wake() -> None:
    """Tell this process's writer a page was queued (starting the writer on first use). A page
    queued now is due PREPARE_DELAY_SECONDS from now: the writer is woken only if it would not
    look at the queue by then, so requests do not each cost the writer a look."""
    global _writer
    settings = get_settings()
    if not settings.prepare_pages:
        return
    with _writer_lock:
        if _writer is None or not _writer.is_alive():
            _writer = threading.Thread(target=_write_ahead, name="page-writer", daemon=True)
            _writer.start()
    if time.monotonic() + settings.prepare_delay_seconds < _next_look:
        _wake.set()


def _write_ahead() -> None:
    """Claim due pages while LLM slots are free (several processes share the queue) and compute
    them one at a time; pages that need the LLM are finished on the pool. Then sleep until the
    next is due, a slot frees up or something wakes the writer.

    One page at a time: the writer's work is speculative (the listener may not come back), so it
    must not crowd out requests. When they keep every core busy, the writer falls behind and
    those listeners' pages are computed on their request, which costs less than computing them
    ahead and storing them (bench/findings.md)."""
    global _next_look
    settings = get_settings()
    slots = settings.ai_concurrency
    in_flight: set[Future] = set()
    with ThreadPoolExecutor(slots, thread_name_prefix="page-writer") as pool:
        while True:
            _wake.clear()
            _next_look = math.inf
            in_flight = {f for f in in_flight if not f.done()}
            pause = IDLE_SECONDS
            try:
                if len(in_flight) < slots:
                    with db_utils.connection() as conn:
                        due = store.pages.claim_due_pages(
                            conn, slots - len(in_flight), settings.prepare_max_age_seconds
                        )
                        later = store.pages.seconds_to_next_page(conn)
                    for entry in due:
                        left = _prepare_logged(entry)
                        if left is not None:
                            try:
                                in_flight.add(pool.submit(_finish_logged, entry, *left))
                            except RuntimeError:  # the interpreter is exiting; the page goes unprepared
                                return
                    if due:
                        pause = 0.0  # more may have come due while these were computed
                    elif later is not None:
                        pause = max(later, MIN_PAUSE_SECONDS)  # rows another process holds are due "now"
                if len(in_flight) >= slots:
                    pause = MIN_PAUSE_SECONDS  # look again when a slot may have freed up
            except db_utils.UNAVAILABLE as exc:
                log.warning("page writer: database unavailable (%s)", type(exc).__name__)
                pause = RETRY_SECONDS
            _next_look = time.monotonic() + pause
            _wake.wait(pause)


def _prepare_logged(entry: dict[str, Any]) -> tuple[Page, int] | None:
    try:
        return prepare(entry["user_id"], entry["page_size"], entry["category"])
    except db_utils.UNAVAILABLE:
        raise  # the writer waits and retries (the pages claimed with this one go unprepared)
    except Exception:  # the writer has no caller to tell: log it, the next request falls back
        log.exception("preparing the next page of user %s failed", entry["user_id"])
        return None


def _finish_logged(entry: dict[str, Any], page: Page, seen: int) -> None:
    try:
        finish(page, seen, entry["page_size"], entry["category"])
    except Exception:  # a thread has no caller to tell: log it, the next request falls back
        log.exception("preparing the next page of user %s failed", entry["user_id"])
