"""The thin OpenAI client: the `openai` SDK's client for OpenAI, Azure OpenAI (an API key or
keyless Entra ID) or any OpenAI-compatible server, and calls that end within the AI budget of the
HTTP request making them (`deadline`).

What is asked and how answers are checked is `recommender/ai/openai_provider.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import openai

from config import Settings

AZURE_SCOPE = "https://cognitiveservices.azure.com/.default"
RETRYABLE = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)  # timeouts too
R = TypeVar("R")

# When the AI calls of the current HTTP request must end (time.monotonic()); None elsewhere (the
# worker), where the client's own timeout and retries apply.
_deadline: ContextVar[float | None] = ContextVar("ai_deadline", default=None)


class BudgetSpentError(Exception):
    """The request's time budget for AI calls is spent: no call was made."""


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
    """AI calls made inside (in this context) end within `seconds` from now, retries included
    (or sooner, when an enclosing deadline ends first)."""
    end, enclosing = time.monotonic() + seconds, _deadline.get()
    token = _deadline.set(end if enclosing is None else min(end, enclosing))
    try:
        yield
    finally:
        _deadline.reset(token)


def call(client: openai.OpenAI, request: Callable[[openai.OpenAI], R]) -> R:
    """`request` on `client`. Under a `deadline` each attempt gets what is left of it (at most
    the client's timeout) and retries stop when it is spent: the SDK's own retries would each
    wait the full timeout."""
    end = _deadline.get()
    if end is None:
        return request(client)
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
