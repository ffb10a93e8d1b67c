"""The answers stored per idempotency key (`api/idempotency.py` is the HTTP side).

A key is claimed in its own transaction before the request runs; the request's answer is stored
with it, or the key released, after. When the database cannot take the answer or the release,
they are kept in memory and written before this process's next claim. A claim whose process died
is taken over at once (`db_utils.process_holder`), one abandoned otherwise after its lease; and
what the request stores carries its key (`row_key`), so the retry of a request that died after
storing it finds what it stored instead of storing it again.
"""

from __future__ import annotations

import logging
import threading
from contextvars import ContextVar

import db_utils
from recommender import store
from recommender.service.database import require_database

log = logging.getLogger(__name__)

Finish = tuple[str, str, int | None, str | None]  # key, route, status (None: release), body
_backlog: list[Finish] = []  # finishes the database refused, written before the next claim
_backlog_lock = threading.Lock()
_claimed: ContextVar[tuple[str, str] | None] = ContextVar("idempotency_key", default=None)


def claim(
    key: str, route: str, fingerprint: str, lease_seconds: float
) -> tuple[str, int | None, str | None] | None:
    """None when this request may run (the key is new, or its claim was abandoned), else the
    stored (fingerprint, status, body): status None while the first request still runs."""
    require_database()
    _write_backlog()
    holder = db_utils.process_holder()
    with db_utils.connection() as conn:
        stored = store.idempotency.claim(conn, key, route, fingerprint, lease_seconds, holder)
    if stored is None:
        _claimed.set((key, route))
    return stored


def finish(key: str, route: str, status: int | None, body: str | None) -> None:
    """Store the answer of the request that claimed the key, or (status None) release it."""
    _claimed.set(None)
    _finish((key, route, status, body))


def row_key(index: int) -> str | None:
    """The key of the `index`-th row the request being handled stores, when it claimed an
    Idempotency-Key (None otherwise): its retries store the same key, so they find the row."""
    claimed = _claimed.get()
    return None if claimed is None else f"idempotency:{claimed[1]}:{claimed[0]}:{index}"


def _finish(finish: Finish) -> bool:
    """Store the answer or release the key; if the database refuses, keep it for later."""
    try:
        with db_utils.connection() as conn:
            store.idempotency.finish(conn, *finish)
        return True
    except db_utils.UNAVAILABLE as exc:
        log.warning("idempotency key %r not finished yet (%s); kept to retry", finish[0], type(exc).__name__)
        with _backlog_lock:
            _backlog.append(finish)
        return False


def _write_backlog() -> None:
    """Write the finishes the database refused before, stopping at the first refusal."""
    with _backlog_lock:
        pending = _backlog.copy()
        _backlog.clear()
    for index, finish in enumerate(pending):
        if not _finish(finish):
            with _backlog_lock:
                _backlog.extend(pending[index + 1 :])
            return
