"""The database's schema: migrated once per process, for the configured embedding model."""

from __future__ import annotations

import threading

import db_utils
from config import get_settings
from recommender.ai import get_provider

_ready = False
_ready_lock = threading.Lock()


def ensure_database() -> list[str]:
    """Apply the pending migrations and check the embedding model; returns the applied ones."""
    with _ready_lock:
        return _migrate()


def _migrate() -> list[str]:
    global _ready
    provider = get_provider()
    with db_utils.connection() as conn:
        storage = db_utils.storage_type(provider.dimensions, get_settings().embedding_storage)
        applied = db_utils.migrate(conn, provider.dimensions, provider.embedding_model, storage)
    _ready = True
    return applied


def ready() -> bool:
    """Whether this process has migrated the database already."""
    return _ready


def require_database() -> None:
    """Migrate first if this process has not yet: every service function starts with this. The
    requests that arrive meanwhile wait for that one migration (they do not each run it again)."""
    if _ready:
        return
    with _ready_lock:
        if not _ready:
            _migrate()
