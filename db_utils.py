"""Postgres access: the connection pool, migrations and every SQL statement of the app."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import psycopg2.extras
import psycopg2.pool
from pgvector import Vector
from pgvector.psycopg2 import register_vector

from config import PROJECT_DIR, Settings, get_settings

log = logging.getLogger(__name__)

SQL_DIR = PROJECT_DIR / "sql"
MIGRATION_LOCK_ID = 4_711_001  # pg_advisory_lock key: one migrator at a time across instances

_pool: psycopg2.pool.ThreadedConnectionPool | None = None
_pool_lock = threading.Lock()
_embedded_server: Any = None  # keeps the embedded Postgres alive while the process runs
_iterative_scan = False  # set by migrate() from the pgvector version


class SchemaMismatchError(RuntimeError):
    """The database was built for another embedding model; the message says what to do."""


def embedded_database_url(data_dir: Path) -> str:
    """Start (or join) the embedded Postgres under `data_dir` and return its URL."""
    global _embedded_server
    import pgserver  # a local/dev dependency, never needed in Azure

    pgdata = data_dir / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    _embedded_server = pgserver.get_server(pgdata)
    return _embedded_server.get_uri()


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded_database_url(settings.data_dir)


def get_pool() -> psycopg2.pool.ThreadedConnectionPool:
    """The process-wide pool, created on first use (Azure runs sync functions on threads)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            settings = get_settings()
            _pool = psycopg2.pool.ThreadedConnectionPool(
                settings.db_pool_min,
                settings.db_pool_max,
                database_url(settings),
                connect_timeout=10,
                keepalives=1,
                application_name="podcast-recommender",
            )
        return _pool


def close_pool() -> None:
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.closeall()
            _pool = None


@contextmanager
def connection() -> Iterator[psycopg2.extensions.connection]:
    """A pooled connection inside one transaction: committed on success, rolled back on error."""
    pool = get_pool()
    conn = pool.getconn()
    broken = False
    try:
        with conn:
            yield conn
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        broken = True  # e.g. Neon closed an idle connection: drop it from the pool
        raise
    finally:
        pool.putconn(conn, close=broken or conn.closed != 0)


# --- migrations -------------------------------------------------------------------------


def migration_files() -> list[Path]:
    return sorted(SQL_DIR.glob("[0-9][0-9][0-9]_*.sql"))


def migrate(conn, dimensions: int, embedding_model: str) -> list[str]:
    """Apply the pending migrations in `sql/` once, then check the embedding model matches."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
        cur.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        cur.execute("CREATE TABLE IF NOT EXISTS app_meta (key text PRIMARY KEY, value text NOT NULL)")
        cur.execute("SELECT version FROM schema_migrations")
        applied = {row[0] for row in cur.fetchall()}
        if not applied:
            cur.execute(
                "INSERT INTO app_meta VALUES ('embedding_model', %s), ('embedding_dimensions', %s)"
                " ON CONFLICT (key) DO NOTHING",
                (embedding_model, str(dimensions)),
            )
        check_embedding_model(cur, dimensions, embedding_model)
        for path in migration_files():
            if path.stem in applied:
                continue
            sql = path.read_text().replace("{{EMBEDDING_DIMENSIONS}}", str(int(dimensions)))
            cur.execute(sql)
            cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
            applied.add(path.stem)
            log.info("applied migration %s", path.stem)
        global _iterative_scan
        _iterative_scan = supports_iterative_scan(pgvector_version(cur))
    register_vector(conn, globally=True)
    return sorted(applied)


def check_embedding_model(cur, dimensions: int, embedding_model: str) -> None:
    cur.execute("SELECT key, value FROM app_meta")
    meta = dict(cur.fetchall())
    stored_model = meta.get("embedding_model", embedding_model)
    stored_dims = int(meta.get("embedding_dimensions", dimensions))
    if (stored_model, stored_dims) != (embedding_model, dimensions):
        raise SchemaMismatchError(
            f"This database holds {stored_dims}-dimension vectors from {stored_model!r}, but the "
            f"configured embedding model is {embedding_model!r} with {dimensions} dimensions. "
            f"Configure {stored_model!r} again (AI_PROVIDER / *_EMBEDDING_MODEL / "
            "EMBEDDING_DIMENSIONS), or point DATABASE_URL at a new, empty database."
        )


def applied_migrations(cur) -> list[str]:
    cur.execute("SELECT version FROM schema_migrations ORDER BY version")
    return [row[0] for row in cur.fetchall()]


def pgvector_version(cur) -> str:
    cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    row = cur.fetchone()
    return row[0] if row else ""


def supports_iterative_scan(version: str) -> bool:
    """pgvector 0.8.0 added iterative index scans (keeps scanning until LIMIT rows pass the filter)."""
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    return parts >= (0, 8)


# --- podcasts ---------------------------------------------------------------------------

PODCAST_FIELDS = (
    "external_id", "title", "description", "transcript", "category", "language",
    "duration_seconds", "published_at",
)  # fmt: skip
PODCAST_COLUMNS = (
    "id, external_id, title, description, category, language, duration_seconds, published_at,"
    " summary, status, created_at, updated_at"
)


def dict_cursor(conn):
    return conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)


def upsert_podcast(conn, fields: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Insert a podcast, or update the one with the same external_id. Returns (row, created).

    Changed text (title, description, transcript) puts the podcast back to 'pending'.
    """
    values = [fields.get(name) for name in PODCAST_FIELDS]
    with dict_cursor(conn) as cur:
        cur.execute(
            f"""
            INSERT INTO podcasts ({", ".join(PODCAST_FIELDS)})
            VALUES ({", ".join(["%s"] * len(PODCAST_FIELDS))})
            ON CONFLICT (external_id) DO UPDATE SET
                {", ".join(f"{n} = EXCLUDED.{n}" for n in PODCAST_FIELDS[1:])},
                status = CASE WHEN (podcasts.title, podcasts.description, podcasts.transcript)
                                   IS NOT DISTINCT FROM
                                   (EXCLUDED.title, EXCLUDED.description, EXCLUDED.transcript)
                              THEN podcasts.status ELSE 'pending' END,
                enrich_attempts = 0,
                next_attempt_at = now(),
                updated_at = now()
            RETURNING {PODCAST_COLUMNS}, transcript, (xmax = 0) AS created
            """,
            values,
        )
        row = cur.fetchone()
    return row, row.pop("created")


def save_enrichment(
    conn, podcast: dict[str, Any], summary: str, embedding: np.ndarray
) -> dict[str, Any] | None:
    """Store summary and vector, unless the text changed meanwhile (then it stays pending)."""
    with dict_cursor(conn) as cur:
        cur.execute(
            f"""
            UPDATE podcasts SET summary = %s, embedding = %s, status = 'ready', last_error = NULL,
                                updated_at = now()
            WHERE id = %s AND (title, description, transcript) IS NOT DISTINCT FROM (%s, %s, %s)
            RETURNING {PODCAST_COLUMNS}
            """,
            (
                summary,
                embedding,
                podcast["id"],
                podcast["title"],
                podcast["description"],
                podcast["transcript"],
            ),
        )
        return cur.fetchone()


def claim_pending_podcasts(conn, limit: int, max_attempts: int, lease_seconds: int = 120) -> list[dict]:
    """Lease up to `limit` due pending podcasts; SKIP LOCKED lets several workers run at once.

    The lease (next_attempt_at in the future) keeps other workers off them while the AI calls
    run outside this transaction; a crash simply lets the lease expire.
    """
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            UPDATE podcasts p SET next_attempt_at = now() + make_interval(secs => %s)
            FROM (SELECT id FROM podcasts
                  WHERE status = 'pending' AND next_attempt_at <= now() AND enrich_attempts < %s
                  ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED) due
            WHERE p.id = due.id
            RETURNING p.id, p.title, p.description, p.transcript, p.enrich_attempts
            """,
            (lease_seconds, max_attempts, limit),
        )
        return cur.fetchall()


def record_enrichment_failure(conn, podcast_ids: Sequence[int], error: str) -> None:
    """Count the attempt, keep the error, back off exponentially: 2 s, 4 s, 8 s ... at most 10 min."""
    with conn.cursor() as cur:
        cur.execute(
            """
            UPDATE podcasts
            SET last_error = %s,
                enrich_attempts = enrich_attempts + 1,
                next_attempt_at = now() + make_interval(secs => least(600, 2 ^ (enrich_attempts + 1)))
            WHERE id = ANY(%s) AND status = 'pending'
            """,
            (error[:500], list(podcast_ids)),
        )


def pending_user_histories(conn, limit: int) -> list[dict[str, Any]]:
    with dict_cursor(conn) as cur:
        cur.execute(
            "SELECT id, listening_history FROM users"
            " WHERE listening_history IS NOT NULL AND history_embedding IS NULL LIMIT %s",
            (limit,),
        )
        return cur.fetchall()


def save_history_embedding(conn, user_id: str, history: str, embedding: np.ndarray) -> None:
    """Store the vector of `history` if it is still the user's text, then rebuild the profile."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE users SET history_embedding = %s WHERE id = %s AND listening_history = %s",
            (embedding, user_id, history),
        )
        if cur.rowcount:
            refresh_profile(conn, user_id)


def missing_podcast_ids(conn, ids: Sequence[int]) -> list[int]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT i FROM unnest(%s::bigint[]) AS i"
            " WHERE NOT EXISTS (SELECT 1 FROM podcasts WHERE id = i) ORDER BY i",
            (list(ids),),
        )
        return [row[0] for row in cur.fetchall()]


def podcast_counts(cur) -> dict[str, int]:
    cur.execute("SELECT status, count(*) FROM podcasts GROUP BY status")
    counts = {"ready": 0, "pending": 0}
    counts.update(dict(cur.fetchall()))
    return counts


# --- users --------------------------------------------------------------------------------


def upsert_user_history(
    conn,
    user_id: str,
    name: str | None,
    history: str | None,
    history_embedding: np.ndarray | None,
    listened_ids: Sequence[int],
) -> dict[str, Any]:
    """Create or update the user, add listens and rebuild the profile vector, in one transaction.

    The profile is the normalized sum of the history text's vector and the mean vector of the
    listened episodes, so both count equally however many episodes there are.
    """
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            INSERT INTO users AS u (id, name, listening_history) VALUES (%s, %s, %s)
            ON CONFLICT (id) DO UPDATE SET
                name = COALESCE(EXCLUDED.name, u.name),
                listening_history = COALESCE(EXCLUDED.listening_history, u.listening_history),
                updated_at = now()
            RETURNING (xmax = 0) AS created
            """,
            (user_id, name, history),
        )
        created = cur.fetchone()["created"]
        if history is not None:  # new text: its vector, or NULL (pending) if the AI failed
            cur.execute(
                "UPDATE users SET history_embedding = %s WHERE id = %s",
                (history_embedding, user_id),
            )
        if listened_ids:
            cur.execute(
                "INSERT INTO user_listens (user_id, podcast_id)"
                " SELECT %s, unnest(%s::bigint[]) ON CONFLICT DO NOTHING",
                (user_id, list(listened_ids)),
            )
        refresh_profile(conn, user_id)
        cur.execute(
            "SELECT"
            " id AS user_id, name, listening_history,"
            " CASE WHEN listening_history IS NOT NULL AND history_embedding IS NULL"
            "      THEN 'pending' ELSE 'ready' END AS profile_status,"
            " (SELECT count(*) FROM user_listens WHERE user_id = %s) AS listened_count,"
            " created_at, updated_at FROM users WHERE id = %s",
            (user_id, user_id),
        )
        row = cur.fetchone()
    row["created"] = created
    return row


def refresh_profile(conn, user_id: str) -> None:
    """Rebuild the profile vector from its parts, with the user's row locked."""
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT u.history_embedding,
                   (SELECT avg(p.embedding) FROM user_listens l JOIN podcasts p ON p.id = l.podcast_id
                    WHERE l.user_id = u.id AND p.status = 'ready') AS listened_mean
            FROM users u WHERE u.id = %s FOR UPDATE
            """,
            (user_id,),
        )
        history, listened_mean = cur.fetchone()
        cur.execute(
            "UPDATE users SET embedding = %s WHERE id = %s",
            (combine_profile(history, listened_mean), user_id),
        )


def as_array(vector: Vector | np.ndarray | None) -> np.ndarray | None:
    return vector.to_numpy() if isinstance(vector, Vector) else vector


def combine_profile(*vectors: Vector | np.ndarray | None) -> np.ndarray | None:
    arrays = [as_array(v) for v in vectors]
    present = [v / n for v in arrays if v is not None and (n := np.linalg.norm(v)) > 0]
    if not present:
        return None
    total = np.sum(present, axis=0)
    return (total / np.linalg.norm(total)).astype(np.float32)


def get_user(conn, user_id: str) -> dict[str, Any] | None:
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            SELECT u.id, u.name, u.listening_history, u.embedding,
                   ARRAY(SELECT p.title FROM user_listens l JOIN podcasts p ON p.id = l.podcast_id
                         WHERE l.user_id = u.id ORDER BY l.listened_at DESC LIMIT 10) AS listened_titles
            FROM users u WHERE u.id = %s
            """,
            (user_id,),
        )
        return cur.fetchone()


# --- recommendations --------------------------------------------------------------------


def nearest_podcasts(
    conn,
    query: np.ndarray,
    limit: int,
    *,
    user_id: str,
    resuggest_window_hours: float,
    category: str | None = None,
    ef_search: int = 100,
) -> list[dict[str, Any]]:
    """The `limit` ready podcasts closest to `query` by cosine, through the HNSW index.

    Episodes the user listened to are excluded. Episodes suggested within the window come
    last, so they only fill the page when nothing else is left.
    """
    with dict_cursor(conn) as cur:
        cur.execute(
            "SELECT DISTINCT podcast_id FROM suggested_podcasts"
            " WHERE user_id = %s AND suggested_at > now() - make_interval(secs => %s)",
            (user_id, resuggest_window_hours * 3600),
        )
        recent = {row["podcast_id"] for row in cur.fetchall()}
        wanted = limit + len(recent)
        cur.execute(
            "SELECT set_config('hnsw.ef_search', %s, true)", (str(min(max(ef_search, wanted), 1000)),)
        )
        if _iterative_scan:
            cur.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        sql = """
            SELECT * FROM (
                SELECT p.id AS podcast_id, p.title, p.summary, p.category,
                       p.embedding <=> %(q)s AS distance
                FROM podcasts p
                WHERE p.status = 'ready'
                  AND (%(category)s::text IS NULL OR p.category = %(category)s)
                  AND NOT EXISTS (SELECT 1 FROM user_listens l
                                  WHERE l.user_id = %(user_id)s AND l.podcast_id = p.id)
                ORDER BY {order} LIMIT %(k)s
            ) c ORDER BY distance
        """
        params = {"q": query, "category": category, "user_id": user_id, "k": wanted}
        cur.execute(sql.format(order="p.embedding <=> %(q)s"), params)
        rows = cur.fetchall()
        if len(rows) < wanted:
            # The index scan filters after it finds its ef_search nearest; when filters drop
            # too many, an exact scan is the only way to know nothing closer qualifies.
            cur.execute(sql.format(order="(p.embedding <=> %(q)s) + 0"), params)
            rows = cur.fetchall()
    rows.sort(key=lambda r: (r["podcast_id"] in recent, r["distance"]))
    for row in rows:
        row["similarity"] = 1.0 - float(row.pop("distance"))
    return rows[:limit]


def insert_suggestions(conn, user_id: str, items: Sequence[dict[str, Any]]) -> list[int]:
    """One row per suggestion, in one statement; returns the ids in the order given."""
    with conn.cursor() as cur:
        rows = psycopg2.extras.execute_values(
            cur,
            "INSERT INTO suggested_podcasts (user_id, podcast_id, similarity, rank, reason)"
            " VALUES %s RETURNING id",
            [(user_id, i["podcast_id"], i["similarity"], i["rank"], i["reason"]) for i in items],
            fetch=True,
        )
    return [row[0] for row in rows]
