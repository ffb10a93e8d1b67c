"""The AI service's state as this process last saw it, for `GET /api/health` and the worker.

Every real call of `OpenAIProvider` records its outcome here, so health answers from memory (never
an AI call per request) and the worker learns when the service answers again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class _State:
    status: str = "unknown"  # ok | failing | unknown (nothing seen yet)
    last_success: datetime | None = None
    last_failure: datetime | None = None
    last_error: str | None = None
    recovered: bool = False  # answered after failing (or for the first time): requeue given-up work
    seen: float = field(default_factory=time.monotonic)  # last outcome or probe (process start at first)


_state = _State()
_lock = threading.Lock()


def succeeded() -> None:
    with _lock:
        _state.recovered = _state.recovered or _state.status != "ok"
        _state.status, _state.last_success, _state.seen = "ok", datetime.now(UTC), time.monotonic()


def failed(error: str) -> None:
    """`error` is shown by health: a short text of ours, never the service's answer."""
    with _lock:
        _state.status, _state.last_failure, _state.seen = "failing", datetime.now(UTC), time.monotonic()
        _state.last_error = error[:200]


def take_recovery() -> bool:
    """Whether the service answered since it last failed (or since start); true once per recovery."""
    with _lock:
        recovered, _state.recovered = _state.recovered, False
        return recovered


def probe_due(interval: float) -> bool:
    """True, at most once per `interval` seconds, when nothing was seen for `interval` seconds."""
    with _lock:
        if time.monotonic() - _state.seen < interval:
            return False
        _state.seen = time.monotonic()
        return True


def snapshot() -> dict[str, Any]:
    with _lock:
        return {
            "status": _state.status,
            "last_success": _state.last_success and _state.last_success.isoformat(),
            "last_failure": _state.last_failure and _state.last_failure.isoformat(),
            "last_error": _state.last_error,
        }
