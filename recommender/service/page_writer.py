"""The page writer: each serving process has one thread that prepares the next page of the
listeners queued in `pages_due`, before they ask for it, so that no request waits on the LLM.

A listener is queued when something changed for them (`queue_next_page`, `queue_next_pages`):
served a page, an event, a new history or interest profile. Once due (PREPARE_DELAY_SECONDS
later, so a burst costs one preparation), the writer computes the page their next request will
get (`pages.compute`, as a request does), one page at a time; if every reason is written already
it stores the page at once, else one LLM call on a small pool writes what it lacks first.

Its work is speculative (the listener may not come back), so it must not crowd out requests: when
they keep every core busy it falls behind, and those listeners' pages are computed on their
request, which costs less than computing them ahead and storing them (bench/findings.md).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import db_utils
from config import get_settings
from recommender import store
from recommender.schemas import DEFAULT_PAGE_SIZE
from recommender.service import pages
from recommender.service.pages import Page
from recommender.store.pages import DuePage
from recommender.store.podcasts import Filters

log = logging.getLogger(__name__)

IDLE_SECONDS = 30.0  # the writer looks at the queue this often when nothing woke it
RETRY_SECONDS = 5.0  # after the database failed it
MIN_PAUSE_SECONDS = 0.05  # between looks at the queue while pages are due or every slot is busy


def queue_next_page(
    conn, user_id: str, page_size: int | None = None, category: str | None = None, *, returning_only=False
) -> None:
    """The listener changed, or was served a page of `page_size` in `category`: have their next
    page prepared, and wake the writer once this transaction commits. Without a `page_size`, the
    last page's size and category stay. `returning_only`: only if they were served a page, or
    had one prepared, within PREPARE_ACTIVE_HOURS (a walk-in's first page does not commit an LLM
    call to a second they may never ask for)."""
    settings = get_settings()
    if not settings.prepare_pages:
        return
    within = settings.prepare_active_hours if returning_only else None
    delay = settings.prepare_delay_seconds
    store.pages.queue(conn, user_id, page_size, category, delay, DEFAULT_PAGE_SIZE, within)
    db_utils.on_commit(conn, wake)


def queue_next_pages(conn, user_ids: Sequence[str]) -> None:
    """The profile of these listeners moved (events, a rewritten interest profile): prepare the
    next page of those served a page within PREPARE_ACTIVE_HOURS again, at their last page's size.
    The others are not expected back soon: preparing pages for them (say, for events imported in
    bulk) would spend LLM calls on pages nobody reads."""
    settings = get_settings()
    if not (settings.prepare_pages and user_ids):
        return
    store.pages.queue_active(conn, user_ids, settings.prepare_active_hours, settings.prepare_delay_seconds)
    db_utils.on_commit(conn, wake)


def prepare(user_id: str, page_size: int, category: str | None) -> tuple[Page, int] | None:
    """Compute the listener's next page and store it for their next request when it has every
    reason it needs. Otherwise return it with the newest suggestion it was computed after, for
    `finish` to have the LLM write what it lacks.

    The page is computed under the listener's page lock (none of their pages is served
    meanwhile), so a complete page is stored in the same transaction."""
    for attempt in db_utils.transactions():
        with attempt as conn:
            store.pages.begin_page(conn, user_id)
            user = store.users.get(conn, user_id)
            if user is None:
                return None
            page = pages.compute(conn, user, page_size, Filters(category=category))
            if not page.unwritten():
                pages.keep_prepared(conn, page, page_size, category, {})
                return None
            return page, store.pages.newest_suggestion(conn, user_id)
    raise AssertionError("unreachable: the last attempt raises")


def finish(page: Page, seen: int, page_size: int, category: str | None) -> int:
    """Have the LLM write the reasons `prepare` left, then store the page, unless a suggestion
    newer than `seen` was served meanwhile (the page would repeat it). Returns how many it wrote."""
    written = pages.write_reasons(page)
    assert page.user is not None  # a computed page
    for attempt in db_utils.transactions():
        with attempt as conn:
            store.pages.begin_page(conn, page.user.id)
            pages.keep_prepared(conn, page, page_size, category, written, seen)
    return len(written)


# --- the writer: one thread per process, LLM calls on a small pool ----------------------

_wake = threading.Event()
_writer: threading.Thread | None = None
_writer_lock = threading.Lock()
_next_look = math.inf  # when the writer looks at the queue next (time.monotonic); inf while it looks
# False in a command-line process: it queues pages but leaves writing them to the service (it would
# exit, and stop the embedded database, while its writer was still at work).
writes_here = True


def wake() -> None:
    """Tell this process's writer a page was queued (starting the writer on first use). A page
    queued now is due PREPARE_DELAY_SECONDS from now: the writer is woken only if it would not
    look at the queue by then, so requests do not each cost the writer a look."""
    global _writer
    settings = get_settings()
    if not (settings.prepare_pages and writes_here):
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
                        due = store.pages.claim_due(
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


def _prepare_logged(entry: DuePage) -> tuple[Page, int] | None:
    try:
        return prepare(entry["user_id"], entry["page_size"], entry["category"])
    except db_utils.UNAVAILABLE:
        raise  # the writer waits and retries (the pages claimed with this one go unprepared)
    except Exception:  # the writer has no caller to tell: log it, the next request falls back
        log.exception("preparing the next page of user %s failed", entry["user_id"])
        return None


def _finish_logged(entry: DuePage, page: Page, seen: int) -> None:
    try:
        finish(page, seen, entry["page_size"], entry["category"])
    except Exception:  # a thread has no caller to tell: log it, the next request falls back
        log.exception("preparing the next page of user %s failed", entry["user_id"])
