"""The thin OpenAI client: the `openai` SDK's client for OpenAI, Azure OpenAI (an API key or
keyless Entra ID) or any OpenAI-compatible server, and calls that end within the AI budget of the
HTTP request making them (`deadline`).

What is asked and how answers are checked is `recommender/ai/openai_provider.py`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

import openai

from config import Settings, get_settings

AZURE_SCOPE = "https://cognitiveservices.azure.com/.default"
RETRYABLE = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)  # timeouts too
R = TypeVar("R")


class BudgetSpentError(Exception):
    """The request's time budget for AI calls is spent: no call was made."""


class SlotsBusyError(BudgetSpentError):
    """Every AI slot of this process is held by other requests: no call was made."""


class _Slot:
    """A request's hold on one of the process's AI slots, taken at its first AI call and kept for
    the others (its summaries run on several threads: they share it)."""

    _semaphore: threading.BoundedSemaphore | None = None
    _created = threading.Lock()

    def __init__(self) -> None:
        self.held = False
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            if not self.held and not self._slots().acquire(blocking=False):
                raise SlotsBusyError("every AI slot of this process is busy; the request does without")
            self.held = True

    def release(self) -> None:
        with self._lock:
            if self.held:
                self._slots().release()
                self.held = False

    @classmethod
    def _slots(cls) -> threading.BoundedSemaphore:
        with cls._created:
            if cls._semaphore is None:
                cls._semaphore = threading.BoundedSemaphore(max(get_settings().ai_request_slots, 1))
            return cls._semaphore


@dataclass(frozen=True)
class _Budget:
    end: float  # when the request's AI calls must end (time.monotonic())
    slot: _Slot


# The AI budget of the current HTTP request; None elsewhere (the worker, the page writer), where
# the client's own timeout and retries apply and no request slot is taken.
_budget: ContextVar[_Budget | None] = ContextVar("ai_budget", default=None)


def create_client(settings: Settings) -> openai.OpenAI:
    """The client for `settings.ai_provider`: `azure` or `openai` (any compatible server)."""
    common = {"timeout": settings.ai_timeout_seconds, "max_retries": settings.ai_max_retries}
    if settings.ai_provider != "azure":
        return openai.OpenAI(
            api_key=settings.openai_api_key or "not-needed",
            base_url=settings.openai_base_url or None,
            **common,
        )
    if settings.azure_openai_api_key:
        auth = {"api_key": settings.azure_openai_api_key}
    else:  # keyless: Entra ID through the managed identity or developer login
        from azure.identity import DefaultAzureCredential, get_bearer_token_provider

        auth = {"azure_ad_token_provider": get_bearer_token_provider(DefaultAzureCredential(), AZURE_SCOPE)}
    return openai.AzureOpenAI(
        azure_endpoint=settings.azure_openai_endpoint,
        api_version=settings.azure_openai_api_version,
        **auth,
        **common,
    )


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """The AI calls made inside (in this context) are a request's: they end within `seconds`
    from now, retries included (or sooner, when an enclosing deadline ends first), and they run
    only while the request holds one of the process's AI_REQUEST_SLOTS, so AI work can never
    hold every thread serving requests."""
    enclosing = _budget.get()
    end = time.monotonic() + seconds
    if enclosing is not None:
        end = min(end, enclosing.end)
    budget = _Budget(end, enclosing.slot if enclosing is not None else _Slot())
    token = _budget.set(budget)
    try:
        yield
    finally:
        _budget.reset(token)
        if enclosing is None:
            budget.slot.release()


def call(client: openai.OpenAI, request: Callable[[openai.OpenAI], R]) -> R:
    """`request` on `client`. Under a `deadline` each attempt gets what is left of it (at most
    the client's timeout) and retries stop when it is spent: the SDK's own retries would each
    wait the full timeout."""
    budget = _budget.get()
    if budget is None:
        return request(client)
    budget.slot.take()
    end = budget.end
    attempt = 0
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise BudgetSpentError("the request's time budget for AI calls is spent")
        timeout = client.timeout
        limit = min(remaining, timeout) if isinstance(timeout, int | float) else remaining
        try:
            return request(client.with_options(timeout=limit, max_retries=0))
        except RETRYABLE:
            pause = 0.5 * 2**attempt
            if attempt >= client.max_retries or time.monotonic() + pause >= end:
                raise
            time.sleep(pause)
            attempt += 1
