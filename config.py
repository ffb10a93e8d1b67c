"""Settings: each one a typed field with its default and what it means, read from the environment
variable of the same name in capitals (or a `.env` file; `local.settings.json` under `func start`).

Every default works on a laptop with no cloud account: an embedded Postgres under `./.data/` and
the offline `local` AI provider. `python config.py` prints the table of docs/settings.md, which a
test keeps equal to this file.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_DIR = Path(__file__).resolve().parent


LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"  # the local runner's


def setting(default: Any, meaning: str, shown: str | None = None) -> Any:
    """A setting's default and what it means (`shown`: the default as the table writes it)."""
    return Field(default, description=meaning, json_schema_extra={"shown": shown} if shown else None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=PROJECT_DIR / ".env", env_ignore_empty=True, str_strip_whitespace=True, extra="ignore"
    )

    # The database
    database_url: str = setting(
        "",
        "Postgres with pgvector, e.g. Neon. Empty starts an embedded Postgres under `DATA_DIR`.",
        "*(empty: embedded)*",
    )
    data_dir: Path = setting(
        PROJECT_DIR / ".data", "Where the embedded Postgres keeps its files.", "`./.data`"
    )
    db_pool_min: int = setting(1, "Connections per process opened at start.")
    db_pool_max: int = setting(
        10,
        "Connections per process at most. Once opened they are kept (a burst does not reconnect; Neon's "
        "compute still scales to zero, as it counts queries, not connections); one idle for a minute is "
        "checked before use.",
    )

    # The AI service
    ai_provider: Literal["auto", "local", "openai", "azure"] = setting(
        "auto",
        "`azure` if `AZURE_OPENAI_ENDPOINT` is set, `openai` if `OPENAI_API_KEY` or `OPENAI_BASE_URL` is, "
        "else `local` (offline).",
    )
    azure_openai_endpoint: str = setting("", "`https://<resource>.openai.azure.com`")
    azure_openai_api_key: str = setting(
        "", "Leave empty for keyless Entra ID (managed identity / `az login`)."
    )
    azure_openai_api_version: str = setting("2024-10-21", "The Azure OpenAI API version.")
    azure_openai_embedding_deployment: str = setting(
        "text-embedding-3-small", "Deployment name of the embedding model."
    )
    azure_openai_chat_deployment: str = setting("gpt-4o-mini", "Deployment name of the chat model.")
    openai_api_key: str = setting("", "OpenAI key (optional for local OpenAI-compatible servers).")
    openai_base_url: str = setting(
        "", "Any OpenAI-compatible server, e.g. `http://localhost:11434/v1` (Ollama)."
    )
    openai_embedding_model: str = setting("text-embedding-3-small", "The embedding model (`openai`).")
    openai_chat_model: str = setting("gpt-4o-mini", "The chat model (`openai`).")
    embedding_dimensions: int = setting(
        0, "Shorter vectors from `text-embedding-3-*` (e.g. `512`); 0 keeps the model's own.", "model's own"
    )
    embedding_storage: Literal["auto", "vector", "halfvec"] = setting(
        "auto",
        "`vector` (4 bytes a dimension) or `halfvec` (2 bytes: half the table and index, HNSW up to 4,000 "
        "dimensions instead of 2,000); `auto` takes `halfvec` above 2,000 dimensions (e.g. "
        "`text-embedding-3-large`). Fixed when the database is first migrated.",
    )
    local_embedding_model: str = setting(
        "sentence-transformers/all-MiniLM-L6-v2",
        "The offline model's name, recorded in the database; the `local` provider runs only "
        "all-MiniLM-L6-v2 (installed with the packages, never downloaded).",
    )
    ai_timeout_seconds: float = setting(20.0, "Per AI request.")
    ai_max_retries: int = setting(2, "Retries with backoff by the `openai` SDK (429, 5xx, timeouts).")
    request_budget_seconds: float = setting(
        10.0,
        "What the AI calls of one HTTP request may take, retries included; then it degrades. The worker "
        "is not bounded by it.",
    )
    embedding_batch_size: int = setting(128, "Texts per embedding request.")
    summary_batch_size: int = setting(
        10, "Episodes summarized per LLM call (JSON in, JSON out, each checked)."
    )
    ai_concurrency: int = setting(
        10,
        "LLM calls at once: summary batches while enriching (a 100-episode import batch is one round of "
        "calls), reasons written by each process's page writer.",
    )
    ai_request_slots: int = setting(
        4,
        "AI calls of requests at once, per process (a request holds one slot for all its calls). A "
        "request that finds every slot taken does without the AI at once (an episode stays pending, a "
        "page keeps its evidence sentences, search answers 503 with `Retry-After`) rather than hold a "
        "thread: keep it below the threads serving requests (`PYTHON_THREADPOOL_THREAD_COUNT`), so "
        "health and requests that need no AI always find one.",
    )
    ai_probe_seconds: float = setting(
        300.0,
        "Health probes the AI service (one tiny call, in the background) when no embedding was made "
        "this long; a failing capability is probed sooner (chat: every 10 s at most).",
    )

    # The worker
    enrich_schedule: str = setting(
        "*/10 * * * * *",
        "When the worker runs (NCRONTAB, `%ENRICH_SCHEDULE%` of the timer); must be set in Azure (the "
        "templates use hourly, so an idle Neon compute can suspend).",
    )
    enrich_max_attempts: int = setting(
        10,
        "Fast worker attempts per pending episode (exponential backoff, at most 10 min apart); then "
        "health counts it `failed`.",
    )
    enrich_slow_retry_seconds: float = setting(
        3600.0,
        "After the fast attempts, an episode is retried this often (and at once when the AI service "
        "answers again).",
    )

    # Recommending
    hnsw_ef_search: int = setting(
        200,  # recall@10 at 1M episodes 0.965 where 100 gave 0.938, for ~2 ms more per probe
        "HNSW candidate list size per query (raised automatically when many episodes are excluded).",
    )
    search_min_score: float = setting(
        0.2,
        "Search shows no match less similar than this (cosine, 0-1; a request's `min_score` overrides it). "
        "Unrelated texts score about 0-0.15 with all-MiniLM-L6-v2 and text-embedding-3-small alike; "
        "another embedding model may need another floor.",
    )
    resuggest_window_hours: float = setting(
        24.0, "An episode suggested within this window is not suggested again while others remain."
    )
    blend_collaborative: float = setting(
        1.0, "Weight of the co-engagement score (scaled by the page's best) in the ranking."
    )
    blend_factors: float = setting(
        1.0, "Weight of the factor affinity (iALS, scaled by the page's best) in the ranking."
    )
    blend_ease: float = setting(1.0, "Weight of the EASE score (scaled by the page's best) in the ranking.")
    blend_content: float = setting(0.1, "Weight of the cosine similarity to the listener's profile.")
    blend_popularity: float = setting(
        0.02, "Weight of the popularity prior (in [0, 1): log engagement over log listeners)."
    )
    blend_negatives: float = setting(
        1.0,
        "How much the listener's disliked and skipped episodes count against their co-engagement and EASE"
        " neighbours: 1 as the events weigh, 0 not at all (each deployment fits its own, model/fusion.py).",
    )
    ab_split: str = setting(
        "loop:80,blend:10,history_only:10",
        "A/B variants and their shares: `loop` ranks with the learned ranker once one is adopted, `blend`"
        " with the hand-set blend, `history_only` by the history's text alone.",
    )
    exploration_share: Annotated[float, Field(ge=0.0, le=1.0)] = setting(
        0.1,
        "Expected share of a `loop` or `blend` page given to exploration: random picks among the better half"
        " of the other candidates (0: none). `make bench-real` measures what it costs and buys.",
    )
    ab_salt: str = setting("v1", "Change it to reshuffle listeners between variants.")

    # Pages prepared ahead
    prepare_pages: bool = setting(
        True, "Compute each returning listener's next page and its reasons ahead of their request."
    )
    prepare_delay_seconds: float = setting(
        0.5, "After a listener's last activity before their next page is prepared (a burst costs one)."
    )
    prepare_active_hours: float = setting(
        1.0, "Events prepare a page only for listeners served a page this lately."
    )
    prepare_max_age_seconds: float = setting(
        600.0,
        "A queued page not prepared by then is dropped; a prepared page older than this is computed again.",
    )

    # Learning
    feedback_half_life_days: float = setting(30.0, "Feedback's weight halves this often.")
    feedback_weight: float = setting(0.5, "How much feedback moves the profile against the stated history.")
    profile_refresh_events: int = setting(
        5,
        "New events before the interest profile is written again (by the worker, never on the request path).",
    )
    collab_neighbors: int = setting(100, "Neighbours kept per episode.")
    collab_alpha: float = setting(
        0.7, "Asymmetric cosine: above 0.5 favours neighbours many listeners enjoyed."
    )
    collab_refresh_events: int = setting(1000, "New events and listens that trigger a rebuild.")
    collab_refresh_seconds: float = setting(
        300.0, "Any new event triggers a rebuild once the model is this old."
    )
    collab_refresh_in_service: bool = setting(
        True,
        "false: a trainer elsewhere (the Spark job, docs/deployment.md) writes the collaborative model;"
        " the timer trains only the ranker (`cli.py train` still refreshes it).",
    )
    collab_max_items_per_listener: int = setting(
        500, "A listener's most recent episodes the model learns from (bounds heavy listeners' cost)."
    )
    ease_max_episodes: int = setting(
        3000,
        "EASE's closed form covers the episodes most listeners enjoyed, this many (its inverse is dense:"
        " 3,000 take about 7 s and 220 MB per refresh; the others get no EASE score).",
    )
    ease_neighbors: int = setting(50, "EASE's largest weights kept per episode.")
    factor_min_listeners: int = setting(
        100,
        "Listeners with positive engagement needed before factors are trained: with fewer they fit noise,"
        " and co-engagement and content rank alone.",
    )
    factor_regularization: float = setting(1.0, "iALS: the least squares' lambda (model/factors.py).")
    factor_alpha: float = setting(
        5.0, "iALS: confidence per unit of net engagement (a like or a listen: 1, a dislike: -1)."
    )
    factor_iterations: int = setting(15, "iALS: alternating passes per training.")
    factor_warm_iterations: int = setting(
        0,
        "iALS: passes of a training that starts from the stored factors (episodes new since start at"
        " random); 0: every training starts afresh with `FACTOR_ITERATIONS`.",
    )
    factor_threads: int = setting(1, "iALS: threads a training uses (a request-serving core stays free).")
    ranker_retrain_events: int = setting(
        200, "Reactions to suggestions (events naming one) before the ranker is trained again."
    )
    ranker_max_rows: int = setting(100_000, "The newest shown items the ranker learns from.")
    ranker_bootstrap_listeners: int = setting(
        300,
        "Listeners whose pages are recomputed with some of their episodes hidden, for the ranker to learn"
        " from besides the log (0: the log alone).",
    )
    popularity_half_life_days: float = setting(
        14.0, "Engagement's weight in the popularity prior halves this often."
    )

    # Requests and access
    user_auth: Literal["none", "easyauth"] = setting(
        "none", "`easyauth`: listener routes act only for the caller signed in by App Service Authentication."
    )
    max_body_bytes: int = setting(10_000_000, "Larger bodies get `413`.")
    max_bulk_items: int = setting(500, "Items per `add_podcasts` request.")
    max_bulk_events: int = setting(1000, "Events per bulk `feedback` request.")

    # The local runner (`make run`; Azure's host has its own)
    local_function_key: str = setting("", "The function key the local runner asks for; empty: no key.")
    local_admin_key: str = setting("", "The admin key the local runner asks for; empty: no key.")
    python_threadpool_thread_count: int = setting(
        0, "Threads running functions per process, as in Azure; 0: Python's default.", "Python's"
    )

    @field_validator("ai_provider", "embedding_storage", "user_auth", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    # Whether `ai_provider` was left to `auto` (the AI settings chose it) rather than named.
    _provider_detected: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _detect_provider(self) -> Settings:
        if self.ai_provider == "auto":
            self._provider_detected = True
            self.ai_provider = (
                "azure"
                if self.azure_openai_endpoint
                else "openai"
                if self.openai_api_key or self.openai_base_url
                else "local"
            )
        return self

    @property
    def offline_by_default(self) -> bool:
        """No AI service is configured and none was named: the offline model was chosen for want of one."""
        return self._provider_detected and self.ai_provider == "local"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def _shown(default: Any) -> str:
    if default == "":
        return ""
    text = (
        str(default).lower()
        if isinstance(default, bool)
        else f"{default:g}"
        if isinstance(default, float)
        else default
    )
    return f"`{text}`"


def settings_table() -> str:
    """The Markdown table of every setting: its environment variable, default and meaning."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        shown = (field.json_schema_extra or {}).get("shown")  # type: ignore[union-attr]
        default = shown if shown is not None else _shown(field.default)
        rows.append(f"| `{name.upper()}` | {default} | {field.description} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
