"""The AI provider behind one small interface (`interface.AIProvider`), chosen by settings:
`azure` (Azure OpenAI), `openai` (OpenAI or any OpenAI-compatible server), both through
`openai_provider.py`, or `local` (offline: `local_provider.py`)."""

from __future__ import annotations

from functools import lru_cache

import openai_client
from config import Settings, get_settings
from recommender.ai.interface import AIProvider
from recommender.ai.local_provider import LocalProvider
from recommender.ai.openai_provider import OpenAIProvider


def create_provider(settings: Settings) -> AIProvider:
    if settings.ai_provider == "local":
        return LocalProvider(settings.local_embedding_model, settings.embedding_batch_size)
    if settings.ai_provider == "azure":
        models = (settings.azure_openai_embedding_deployment, settings.azure_openai_chat_deployment)
    else:
        models = (settings.openai_embedding_model, settings.openai_chat_model)
    return OpenAIProvider(
        openai_client.create_client(settings),
        name=settings.ai_provider,
        embedding_model=models[0],
        chat_model=models[1],
        dimensions=settings.embedding_dimensions,
        batch_size=settings.embedding_batch_size,
    )


@lru_cache(maxsize=1)
def get_provider() -> AIProvider:
    return create_provider(get_settings())
