"""Settings, read once from the environment (and a `.env` file when present).

Every setting has a default that works on a laptop with no cloud account:
an embedded Postgres under `./.data/` and the offline `local` AI provider.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from dotenv import load_dotenv

PROJECT_DIR = Path(__file__).resolve().parent
# recall@10 at 1M episodes 0.965 where 100 gave 0.938, for ~2 ms more per probe (bench/RESULTS.md)
DEFAULT_HNSW_EF_SEARCH = 200


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def _str(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """A setting with a fixed set of values: a typo fails at start-up rather than silently."""
    value = _str(name, default).lower()
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path
    db_pool_min: int
    db_pool_max: int

    ai_provider: str  # "local" | "openai" | "azure"
    ai_timeout_seconds: float
    ai_max_retries: int
    request_budget_seconds: float  # what AI calls of one HTTP request may take, retries included
    embedding_batch_size: int
    embedding_dimensions: int  # 0 = the model's native size
    embedding_storage: str  # auto | vector | halfvec: how episode vectors are stored and indexed

    openai_api_key: str
    openai_base_url: str
    openai_embedding_model: str
    openai_chat_model: str

    azure_openai_endpoint: str
    azure_openai_api_key: str
    azure_openai_api_version: str
    azure_openai_embedding_deployment: str
    azure_openai_chat_deployment: str

    local_embedding_model: str

    resuggest_window_hours: float
    feedback_half_life_days: float
    feedback_weight: float
    profile_refresh_events: int
    ab_split: str
    ab_salt: str
    enrich_schedule: str  # NCRONTAB of the worker (`%ENRICH_SCHEDULE%` in function_app)
    user_auth: str  # none | easyauth: bind user_id to the caller's App Service identity
    enrich_max_attempts: int  # fast retries (backing off to 10 min); then one every ...
    enrich_slow_retry_seconds: float  # ... this many seconds, until the AI service answers again
    ai_probe_seconds: float  # health probes the AI service when nothing was heard from it this long
    hnsw_ef_search: int
    max_body_bytes: int
    max_bulk_items: int
    max_bulk_events: int
    ai_concurrency: int
    summary_batch_size: int  # episodes summarized per LLM call

    prepare_pages: bool  # compute the next page and its reasons ahead of the request that shows it
    prepare_delay_seconds: float  # after the listener's last activity, so a burst costs one call
    prepare_max_age_seconds: float  # a page not prepared by then is dropped: its listener moved on
    prepare_active_hours: float  # feedback prepares a page only for listeners served this lately

    collab_neighbors: int
    collab_alpha: float
    collab_refresh_seconds: float
    collab_refresh_events: int
    collab_max_items_per_listener: int
    popularity_half_life_days: float
    blend_collaborative: float
    blend_content: float
    blend_popularity: float


def _detect_provider() -> str:
    explicit = _str("AI_PROVIDER").lower()
    if explicit:
        if explicit not in {"local", "openai", "azure"}:
            raise ValueError(f"AI_PROVIDER must be local, openai or azure, not {explicit!r}")
        return explicit
    if _str("AZURE_OPENAI_ENDPOINT"):
        return "azure"
    if _str("OPENAI_API_KEY") or _str("OPENAI_BASE_URL"):
        return "openai"
    return "local"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    load_dotenv(PROJECT_DIR / ".env", override=False)
    return Settings(
        database_url=_str("DATABASE_URL"),
        data_dir=Path(_str("DATA_DIR", str(PROJECT_DIR / ".data"))),
        db_pool_min=_int("DB_POOL_MIN", 1),
        db_pool_max=_int("DB_POOL_MAX", 10),
        ai_provider=_detect_provider(),
        ai_timeout_seconds=_float("AI_TIMEOUT_SECONDS", 20.0),
        ai_max_retries=_int("AI_MAX_RETRIES", 2),
        request_budget_seconds=_float("REQUEST_BUDGET_SECONDS", 10.0),
        embedding_batch_size=_int("EMBEDDING_BATCH_SIZE", 128),
        embedding_dimensions=_int("EMBEDDING_DIMENSIONS", 0),
        embedding_storage=_choice("EMBEDDING_STORAGE", "auto", ("auto", "vector", "halfvec")),
        openai_api_key=_str("OPENAI_API_KEY"),
        openai_base_url=_str("OPENAI_BASE_URL"),
        openai_embedding_model=_str("OPENAI_EMBEDDING_MODEL", "text-embedding-3-small"),
        openai_chat_model=_str("OPENAI_CHAT_MODEL", "gpt-4o-mini"),
        azure_openai_endpoint=_str("AZURE_OPENAI_ENDPOINT"),
        azure_openai_api_key=_str("AZURE_OPENAI_API_KEY"),
        azure_openai_api_version=_str("AZURE_OPENAI_API_VERSION", "2024-10-21"),
        azure_openai_embedding_deployment=_str("AZURE_OPENAI_EMBEDDING_DEPLOYMENT", "text-embedding-3-small"),
        azure_openai_chat_deployment=_str("AZURE_OPENAI_CHAT_DEPLOYMENT", "gpt-4o-mini"),
        local_embedding_model=_str("LOCAL_EMBEDDING_MODEL", "sentence-transformers/all-MiniLM-L6-v2"),
        resuggest_window_hours=_float("RESUGGEST_WINDOW_HOURS", 24.0),
        feedback_half_life_days=_float("FEEDBACK_HALF_LIFE_DAYS", 30.0),
        feedback_weight=_float("FEEDBACK_WEIGHT", 0.5),
        profile_refresh_events=_int("PROFILE_REFRESH_EVENTS", 5),
        ab_split=_str("AB_SPLIT", "loop:90,history_only:10"),
        ab_salt=_str("AB_SALT", "v1"),
        enrich_schedule=_str("ENRICH_SCHEDULE", "*/10 * * * * *"),
        user_auth=_choice("USER_AUTH", "none", ("none", "easyauth")),
        enrich_max_attempts=_int("ENRICH_MAX_ATTEMPTS", 10),
        enrich_slow_retry_seconds=_float("ENRICH_SLOW_RETRY_SECONDS", 3600.0),
        ai_probe_seconds=_float("AI_PROBE_SECONDS", 300.0),
        hnsw_ef_search=_int("HNSW_EF_SEARCH", DEFAULT_HNSW_EF_SEARCH),
        max_body_bytes=_int("MAX_BODY_BYTES", 10_000_000),
        max_bulk_items=_int("MAX_BULK_ITEMS", 500),
        max_bulk_events=_int("MAX_BULK_EVENTS", 1000),
        ai_concurrency=_int("AI_CONCURRENCY", 10),
        summary_batch_size=_int("SUMMARY_BATCH_SIZE", 10),
        prepare_pages=_choice("PREPARE_PAGES", "true", ("true", "false")) == "true",
        prepare_delay_seconds=_float("PREPARE_DELAY_SECONDS", 0.5),
        prepare_max_age_seconds=_float("PREPARE_MAX_AGE_SECONDS", 600.0),
        prepare_active_hours=_float("PREPARE_ACTIVE_HOURS", 1.0),
        collab_neighbors=_int("COLLAB_NEIGHBORS", 100),
        collab_alpha=_float("COLLAB_ALPHA", 0.7),
        collab_refresh_seconds=_float("COLLAB_REFRESH_SECONDS", 300.0),
        collab_refresh_events=_int("COLLAB_REFRESH_EVENTS", 1000),
        collab_max_items_per_listener=_int("COLLAB_MAX_ITEMS_PER_LISTENER", 500),
        popularity_half_life_days=_float("POPULARITY_HALF_LIFE_DAYS", 14.0),
        blend_collaborative=_float("BLEND_COLLABORATIVE", 1.0),
        blend_content=_float("BLEND_CONTENT", 0.1),
        blend_popularity=_float("BLEND_POPULARITY", 0.02),
    )
