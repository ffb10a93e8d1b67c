"""The AI service's state per capability (`embeddings`, `chat`) as this process saw it lately, for
`GET /api/health` and the worker.

Every real call of `OpenAIProvider` records its outcome here, so health answers from memory (never
an AI call per request) and the worker learns when the service answers again.

The state of a capability comes from a moving window of its last WINDOW calls, with hysteresis so
that it does not flap:

- `unknown` until its first call;
- `ok` turns `failing` when at least half of the window failed (so the first call failing, or a
  failure rate of 50 % or more, is `failing`), or when the last FAILED_IN_A_ROW calls all failed
  (an outage is seen within a few calls even after a long healthy window);
- `failing` turns `ok` only when the last RECOVERED_IN_A_ROW calls all succeeded, and the window
  then starts again from those calls (the failures before them are the outage that ended).

So at a steady 50 % failure rate a capability is `failing` and stays so: alternating outcomes never
make 10 successes in a row, and random ones do so about once in 2,000 calls (then `ok` for a few
calls: about 1 % of the time). At 5 % it stays `ok` (5 failures in a row, or half of 20, are then
about one chance in a million per call); at 20 % it is `failing` about 3 % of the time, and rates
around a third, between the two rules, change state every hundred calls or so. The window counts
calls, not time: it holds until new calls come, and while a capability is failing (or its last
call failed) health requests probe it every FAILING_PROBE_SECONDS (`health.ai_state`), chat
included, so it recovers without traffic.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

CAPABILITIES = ("embeddings", "chat")
WINDOW = 20
FAILED_IN_A_ROW = 5
RECOVERED_IN_A_ROW = 10
FAILING_PROBE_SECONDS = 10.0  # a failing capability is probed this often (AI_PROBE_SECONDS if shorter)


class Capability:
    """The state of one capability: a moving window of its outcomes, and the status decided from
    it (see the module's docstring). Not thread-safe on its own: the module's lock guards it."""

    def __init__(self) -> None:
        self.outcomes: deque[bool] = deque(maxlen=WINDOW)
        self.status = "unknown"  # ok | failing | unknown (no call yet)
        self.last_success: datetime | None = None
        self.last_failure: datetime | None = None
        self.last_error: str | None = None
        self.seen = time.monotonic()  # last outcome or probe (process start at first)

    def record(self, ok: bool, error: str | None = None) -> None:
        self.outcomes.append(ok)
        self.seen = time.monotonic()
        if ok:
            self.last_success = datetime.now(UTC)
        else:
            self.last_failure, self.last_error = datetime.now(UTC), (error or "failed")[:200]
        recent = list(self.outcomes)
        if self.status == "failing":
            if len(recent) >= RECOVERED_IN_A_ROW and all(recent[-RECOVERED_IN_A_ROW:]):
                self.status = "ok"
                self.outcomes = deque(recent[-RECOVERED_IN_A_ROW:], maxlen=WINDOW)
        elif 2 * recent.count(False) >= len(recent) or (
            len(recent) >= FAILED_IN_A_ROW and not any(recent[-FAILED_IN_A_ROW:])
        ):
            self.status = "failing"
        else:
            self.status = "ok"

    @property
    def last_failed(self) -> bool:
        return bool(self.outcomes) and not self.outcomes[-1]

    def snapshot(self) -> dict[str, Any]:
        failures = list(self.outcomes).count(False)
        return {
            "status": self.status,
            "last_success": self.last_success and self.last_success.isoformat(),
            "last_failure": self.last_failure and self.last_failure.isoformat(),
            "last_error": self.last_error,
            "recent_calls": len(self.outcomes),
            "recent_failures": failures,
        }


_capabilities = {name: Capability() for name in CAPABILITIES}
_recovered = False  # a capability answered after failing (or for the first time): requeue given-up work
_lock = threading.Lock()


def succeeded(capability: str) -> None:
    global _recovered
    with _lock:
        state = _capabilities[capability]
        _recovered = _recovered or state.last_failed or not state.outcomes
        state.record(True)


def failed(capability: str, error: str) -> None:
    """`error` is shown by health: a short text of ours, never the service's answer."""
    with _lock:
        _capabilities[capability].record(False, error)


def take_recovery() -> bool:
    """Whether the service answered since a failure (or since start), now that neither chat nor
    embeddings (what an episode's enrichment needs) last failed; true once per recovery."""
    global _recovered
    with _lock:
        if not _recovered or any(state.last_failed for state in _capabilities.values()):
            return False
        _recovered = False
        return True


def probe_due(capability: str, interval: float) -> bool:
    """True, at most once per `interval` seconds, when nothing was heard from `capability` for
    `interval` seconds; while it is failing or its last call failed, every FAILING_PROBE_SECONDS
    (or `interval` when shorter). Chat, which costs more, is probed only then, to see it answer
    again."""
    with _lock:
        state = _capabilities[capability]
        failing = state.last_failed or state.status == "failing"
        if capability == "chat" and not failing:
            return False
        wait = min(interval, FAILING_PROBE_SECONDS) if failing else interval
        if time.monotonic() - state.seen < wait:
            return False
        state.seen = time.monotonic()
        return True


def snapshot() -> dict[str, Any]:
    """The overall state (`failing` when a capability is, `ok` when one is and none fails, else
    `unknown`; the latest success, failure and error of any) and each capability's."""
    with _lock:
        states = {name: state.snapshot() for name, state in _capabilities.items()}
    statuses = {s["status"] for s in states.values()}
    overall = "failing" if "failing" in statuses else "ok" if "ok" in statuses else "unknown"
    latest_failure = max(states.values(), key=lambda s: s["last_failure"] or "")
    return {
        "status": overall,
        "last_success": max((s["last_success"] for s in states.values() if s["last_success"]), default=None),
        "last_failure": latest_failure["last_failure"],
        "last_error": latest_failure["last_error"],
        **states,
    }


def reset() -> None:
    """Forget every outcome (a fresh process's state): for tests."""
    global _capabilities, _recovered
    with _lock:
        _capabilities = {name: Capability() for name in CAPABILITIES}
        _recovered = False
