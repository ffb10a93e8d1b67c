"""Postgres access: the connection pool, migrations and every SQL statement of the app."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import psycopg2.extras
import psycopg2.pool
from pgvector.psycopg2 import register_vector

import ranking
from config import PROJECT_DIR, Settings, get_settings

log = logging.getLogger(__name__)

SQL_DIR = PROJECT_DIR / "sql"
MIGRATION_LOCK_ID = 4_711_001  # pg_advisory_lock key: one migrator at a time across instances

POOL_WAIT_SECONDS = 30
IDLE_CHECK_SECONDS = 60  # a connection idle this long is pinged before use

_pool: psycopg2.pool.ThreadedConnectionPool | None = None
_pool_slots: threading.BoundedSemaphore | None = None  # psycopg2's pool raises when empty; this waits
_pool_lock = threading.Lock()
_last_used: dict[int, float] = {}  # id(connection) -> time.monotonic() of its last use
_embedded_server: Any = None  # keeps the embedded Postgres alive while the process runs
_iterative_scan = False  # set by migrate() from the pgvector version


class SchemaMismatchError(RuntimeError):
    """The database was built for another embedding model; the message says what to do."""


# Named by major version: a data directory only opens with the major version that wrote it.
EMBEDDED_PGDATA = "pgdata-18"
DEFAULT_PAGE_SIZE = 5  # RecommendQuery.limit's default


def embedded_database_url(data_dir: Path) -> str:
    """Start (or join) the embedded Postgres under `data_dir` and return its URL."""
    global _embedded_server
    try:
        import pgserver  # a local/dev dependency, never needed in Azure
    except ImportError as exc:
        raise RuntimeError(
            "DATABASE_URL is not set and the embedded database is not installed "
            "(pip install -r requirements-dev.txt); set DATABASE_URL to a Postgres with pgvector"
        ) from exc

    pgdata = data_dir / EMBEDDED_PGDATA
    if (data_dir / "pgdata").exists() and not pgdata.exists():
        log.warning(
            "starting a new embedded Postgres 18 in %s; the Postgres 16 data in %s is no longer used"
            " (delete it, or dump it with its own server)",
            pgdata,
            data_dir / "pgdata",
        )
    pgdata.mkdir(parents=True, exist_ok=True)
    _embedded_server = pgserver.get_server(pgdata)
    return _embedded_server.get_uri()


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded_database_url(settings.data_dir)


class DatabaseBusyError(RuntimeError):
    """Every pooled connection stayed in use for POOL_WAIT_SECONDS."""


# The database cannot be reached now (down, restarting, connection lost, pool exhausted): the
# transaction did not commit, so the request can be retried.
UNAVAILABLE = (psycopg2.OperationalError, psycopg2.InterfaceError, psycopg2.pool.PoolError, DatabaseBusyError)


def get_pool() -> psycopg2.pool.ThreadedConnectionPool:
    """The process-wide pool, created on first use (Azure runs sync functions on threads).

    DB_POOL_MIN connections open at once; up to DB_POOL_MAX are opened as needed and then kept,
    so a burst does not pay for new connections (a TLS handshake to Neon) on every request:
    psycopg2's pool closes whatever comes back beyond its `minconn`, so `minconn` is raised to
    the maximum once the first ones are open. Kept connections cost Neon nothing: its compute
    scales to zero when no query ran for 5 minutes, whatever is connected."""
    global _pool, _pool_slots
    with _pool_lock:
        if _pool is None:
            settings = get_settings()
            _pool_slots = threading.BoundedSemaphore(settings.db_pool_max)
            _pool = psycopg2.pool.ThreadedConnectionPool(
                settings.db_pool_min,
                settings.db_pool_max,
                database_url(settings),
                connect_timeout=10,
                keepalives=1,
                application_name="podcast-recommender",
            )
            _pool.minconn = settings.db_pool_max
        return _pool


def _checked_out(pool: psycopg2.pool.ThreadedConnectionPool) -> psycopg2.extensions.connection:
    """A pooled connection that still works: one idle for IDLE_CHECK_SECONDS is pinged first,
    since the server may have closed it meanwhile (Neon does when its compute scales to zero)."""
    conn = pool.getconn()
    if time.monotonic() - _last_used.get(id(conn), 0.0) < IDLE_CHECK_SECONDS:
        return conn
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        conn.rollback()
        return conn
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        pool.putconn(conn, close=True)
        return pool.getconn()


@contextmanager
def connection() -> Iterator[psycopg2.extensions.connection]:
    """A pooled connection inside one transaction: committed on success, rolled back on error.

    Waits for a free connection when all are in use (up to POOL_WAIT_SECONDS)."""
    pool = get_pool()
    slots = _pool_slots
    if not slots.acquire(timeout=POOL_WAIT_SECONDS):
        raise DatabaseBusyError("no database connection became free in time")
    broken = False
    try:
        conn = _checked_out(pool)
        try:
            with conn:
                yield conn
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            broken = True  # e.g. the server went away mid-request: drop it from the pool
            raise
        finally:
            _last_used[id(conn)] = time.monotonic()
            pool.putconn(conn, close=broken or conn.closed != 0)
    finally:
        slots.release()


CHANGES_CHANNEL = "podcasts_pending"  # NOTIFY channel of the podcasts_notify_* triggers


# --- migrations -------------------------------------------------------------------------


def migration_files() -> list[Path]:
    return sorted(SQL_DIR.glob("[0-9][0-9][0-9]_*.sql"))


def storage_type(dimensions: int, setting: str = "auto") -> str:
    """How episode vectors are stored and indexed: `vector` (4 bytes a dimension) or `halfvec`
    (2 bytes: half the memory, HNSW up to 4,000 dimensions instead of 2,000). `auto` takes
    halfvec only where vector cannot be indexed."""
    if setting == "auto":
        return "halfvec" if dimensions > 2000 else "vector"
    return setting


def migrate(conn, dimensions: int, embedding_model: str, storage: str = "vector") -> list[str]:
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
                "INSERT INTO app_meta VALUES ('embedding_model', %s), ('embedding_dimensions', %s),"
                " ('embedding_storage', %s) ON CONFLICT (key) DO NOTHING",
                (embedding_model, str(dimensions), storage),
            )
        check_embedding_model(cur, dimensions, embedding_model, storage)
        for path in migration_files():
            if path.stem in applied:
                continue
            sql = path.read_text().replace("{{EMBEDDING_DIMENSIONS}}", str(int(dimensions)))
            sql = sql.replace("{{EMBEDDING_STORAGE}}", storage)
            cur.execute(sql)
            cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.stem,))
            applied.add(path.stem)
            log.info("applied migration %s", path.stem)
        global _iterative_scan
        _iterative_scan = supports_iterative_scan(pgvector_version(cur))
    register_vector_types(conn)
    return sorted(applied)


def register_vector_types(conn) -> None:
    """pgvector's adapter writes numpy arrays as vectors; vectors are read back as float32 numpy
    arrays by a caster that parses in C (pgvector's parses in Python, 2-3x slower: this is on
    the recommend path, which reads dozens of candidate vectors per request)."""
    register_vector(conn, globally=True)
    with conn.cursor() as cur:
        cur.execute("SELECT to_regtype('vector')::oid, to_regtype('halfvec')::oid")  # halfvec: 0.7+
        oids = tuple(oid for oid in cur.fetchone() if oid is not None)
    caster = psycopg2.extensions.new_type(oids, "VECTOR_NUMPY", parse_vector)
    psycopg2.extensions.register_type(caster)


def parse_vector(text: str | None, _cursor: Any) -> np.ndarray | None:
    return None if text is None else np.fromstring(text[1:-1], sep=",", dtype=np.float32)


def binary(column: str) -> str:
    """Select `column` (a vector or halfvec) in pgvector's binary vector form, for `from_binary`:
    where many vectors are read per request, printing and parsing their floats as text costs
    more than the query."""
    return f"vector_send({column}::vector)"


def from_binary(data: memoryview | bytes | None) -> np.ndarray | None:
    """A vector from pgvector's binary form: int16 dimensions, int16 unused, big-endian float4s."""
    if data is None:
        return None
    return np.frombuffer(data, dtype=">f4", offset=4).astype(np.float32)


def check_embedding_model(cur, dimensions: int, embedding_model: str, storage: str) -> None:
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
    stored_storage = meta.get("embedding_storage", "vector")  # databases made before the setting
    if stored_storage != storage:
        raise SchemaMismatchError(
            f"This database stores episode vectors as {stored_storage}, but EMBEDDING_STORAGE asks for "
            f"{storage}. Set EMBEDDING_STORAGE={stored_storage}, or point DATABASE_URL at a new, empty "
            "database."
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


# --- the vector index -------------------------------------------------------------------

VECTOR_INDEX = "podcasts_embedding_hnsw"


@contextmanager
def vector_index_built_after(maintenance_work_mem: str = "1GB") -> Iterator[None]:
    """Drop the HNSW index for a large load and build it again after (even if the load fails):
    one build over every row is several times faster than as many single inserts into the
    graph. Meanwhile searches scan the table exactly: slower, never wrong."""
    with connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (VECTOR_INDEX,))
        row = cur.fetchone()
        if row is not None:
            cur.execute(f"DROP INDEX {VECTOR_INDEX}")
    try:
        yield
    finally:
        if row is not None:
            with connection() as conn, conn.cursor() as cur:
                cur.execute("SELECT set_config('maintenance_work_mem', %s, true)", (maintenance_work_mem,))
                cur.execute(row[0])


# --- podcasts ---------------------------------------------------------------------------

PODCAST_FIELDS = (
    "external_id", "title", "description", "transcript", "category", "language",
    "duration_seconds", "published_at",
)  # fmt: skip
PODCAST_COLUMNS = (
    "id, external_id, title, description, category, language, duration_seconds, published_at,"
    " summary, status, last_error, created_at, updated_at"
)


class DictCursor(psycopg2.extensions.cursor):
    """A cursor whose rows are plain dicts, built in C: psycopg2's RealDictCursor builds each row
    key by key in Python, which cost half a millisecond per page (dozens of candidate rows)."""

    def _dict(self, row: tuple | None) -> dict[str, Any] | None:
        return None if row is None else dict(zip([c.name for c in self.description], row, strict=True))

    def _dicts(self, rows: list[tuple]) -> list[dict[str, Any]]:
        names = [c.name for c in self.description or ()]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def fetchone(self) -> dict[str, Any] | None:
        return self._dict(super().fetchone())

    def fetchmany(self, size: int | None = None) -> list[dict[str, Any]]:
        return self._dicts(super().fetchmany(self.arraysize if size is None else size))

    def fetchall(self) -> list[dict[str, Any]]:
        return self._dicts(super().fetchall())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while rows := self.fetchmany(self.itersize):  # a named (server-side) cursor: in batches
            yield from rows


def dict_cursor(conn) -> DictCursor:
    return conn.cursor(cursor_factory=DictCursor)


def upsert_podcast(conn, fields: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Insert a podcast, or update the one with the same external_id. Returns (row, created).

    Whether it needs enriching is decided by the `podcasts_mark_changed` trigger, for every
    write path alike: new or changed text becomes 'pending', unchanged text keeps its state.
    """
    values = [fields.get(name) for name in PODCAST_FIELDS]
    with dict_cursor(conn) as cur:
        cur.execute(
            f"""
            INSERT INTO podcasts ({", ".join(PODCAST_FIELDS)})
            VALUES ({", ".join(["%s"] * len(PODCAST_FIELDS))})
            ON CONFLICT (external_id) DO UPDATE SET
                {", ".join(f"{n} = EXCLUDED.{n}" for n in PODCAST_FIELDS[1:])}
            RETURNING {PODCAST_COLUMNS}, transcript, content_hash, (xmax = 0) AS created
            """,
            values,
        )
        row = cur.fetchone()
    return row, row.pop("created")


def update_podcast(conn, podcast_id: int, fields: dict[str, Any]) -> dict[str, Any] | None:
    """Change some fields of a podcast; the trigger decides whether it needs enriching again."""
    assignments = ", ".join(f"{name} = %({name})s" for name in fields if name in PODCAST_FIELDS)
    with dict_cursor(conn) as cur:
        cur.execute(
            f"UPDATE podcasts SET {assignments}, updated_at = now() WHERE id = %(podcast_id)s"
            f" RETURNING {PODCAST_COLUMNS}, transcript, content_hash",
            {**fields, "podcast_id": podcast_id},
        )
        return cur.fetchone()


def delete_podcast(conn, podcast_id: int) -> bool:
    with conn.cursor() as cur:
        cur.execute("DELETE FROM podcasts WHERE id = %s", (podcast_id,))
        return cur.rowcount == 1


def save_enrichments(conn, done: Sequence[tuple[dict[str, Any], str, np.ndarray]]) -> list[dict[str, Any]]:
    """Store (podcast, summary, vector) in one statement, except where the text changed
    meanwhile (that one stays pending); returns the rows saved."""
    with dict_cursor(conn) as cur:
        return psycopg2.extras.execute_values(
            cur,
            f"""
            UPDATE podcasts SET summary = v.new_summary, embedding = v.new_embedding, status = 'ready',
                                last_error = NULL, enriched_hash = content_hash, updated_at = now()
            FROM (VALUES %s) AS v (podcast_id, enriched_from, new_summary, new_embedding)
            WHERE id = v.podcast_id AND content_hash = v.enriched_from
            RETURNING {PODCAST_COLUMNS}
            """,
            [(p["id"], p["content_hash"], summary, vector) for p, summary, vector in done],
            template="(%s::bigint, %s, %s, %s::vector)",
            fetch=True,
        )


def lease_podcasts(conn, podcast_ids: Sequence[int], lease_seconds: int = 120) -> None:
    """Keep the worker off podcasts this process is enriching itself (until the lease expires)."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE podcasts SET next_attempt_at = now() + make_interval(secs => %s)"
            " WHERE id = ANY(%s) AND status = 'pending'",
            (lease_seconds, list(podcast_ids)),
        )


def claim_pending_podcasts(conn, limit: int, lease_seconds: int = 120) -> list[dict]:
    """Lease up to `limit` due pending podcasts; SKIP LOCKED lets several workers run at once.

    The lease (next_attempt_at in the future) keeps other workers off them while the AI calls
    run outside this transaction; a crash simply lets the lease expire.
    """
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            UPDATE podcasts p SET next_attempt_at = now() + make_interval(secs => %s)
            FROM (SELECT id FROM podcasts
                  WHERE status = 'pending' AND next_attempt_at <= now()
                  ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED) due
            WHERE p.id = due.id
            RETURNING p.id, p.title, p.description, p.transcript, p.content_hash
            """,
            (lease_seconds, limit),
        )
        return cur.fetchall()


def record_enrichment_failure(
    conn, podcast_ids: Sequence[int], error: str, max_attempts: int, slow_retry_seconds: float
) -> None:
    """Count the attempt, keep the error, back off exponentially: 2 s, 4 s, 8 s ... at most 10 min;
    from the `max_attempts`-th failure on (given up: `failed` in health), once per `slow_retry_seconds`."""
    with conn.cursor() as cur:
        cur.execute(
            """
            UPDATE podcasts
            SET last_error = %s,
                enrich_attempts = enrich_attempts + 1,
                next_attempt_at = now() + make_interval(secs => CASE WHEN enrich_attempts + 1 >= %s
                    THEN %s ELSE least(600, 2 ^ (enrich_attempts + 1)) END)
            WHERE id = ANY(%s) AND status = 'pending'
            """,
            (error[:500], max_attempts, slow_retry_seconds, list(podcast_ids)),
        )


def requeue_failed_podcasts(conn, max_attempts: int) -> int:
    """Give the episodes the worker gave up on their fast retries again, due now; wakes the workers."""
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE podcasts SET enrich_attempts = 0, next_attempt_at = now()"
            " WHERE status = 'pending' AND enrich_attempts >= %s",
            (max_attempts,),
        )
        requeued = cur.rowcount
        if requeued:
            cur.execute("SELECT pg_notify(%s, 'requeued')", (CHANGES_CHANNEL,))
        return requeued


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


def podcast_counts(cur, max_attempts: int) -> dict[str, int]:
    """Ready and pending episodes; `failed` are pending ones the worker gave up on."""
    cur.execute(
        "SELECT count(*) FILTER (WHERE status = 'ready'), count(*) FILTER (WHERE status = 'pending'),"
        " count(*) FILTER (WHERE status = 'pending' AND enrich_attempts >= %s) FROM podcasts",
        (max_attempts,),
    )
    return dict(zip(("ready", "pending", "failed"), cur.fetchone(), strict=True))


# --- users --------------------------------------------------------------------------------


def upsert_user_history(
    conn,
    user_id: str,
    name: str | None,
    history: str | None,
    history_embedding: np.ndarray | None,
    listened_ids: Sequence[int],
) -> dict[str, Any]:
    """Create or update the user, add listens and rebuild the profile vectors, in one transaction."""
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
                "UPDATE users SET history_embedding = %s, reasons_valid_from = now() WHERE id = %s",
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
            " id AS user_id, name, listening_history IS NOT NULL AS has_history,"  # never echo the text
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
    """Rebuild both profile vectors from their parts, with the user's row locked.

    `history_profile` is the history text plus the mean of the listened episodes (what the
    `history_only` variant ranks by); `embedding` adds the generated interest profile and the
    decayed feedback vector (what the learning `loop` variant ranks by).
    """
    settings = get_settings()
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            SELECT u.history_embedding, u.interest_embedding, u.feedback_vector,
                   extract(epoch FROM now() - u.feedback_at) AS feedback_age,
                   (SELECT avg(p.embedding) FROM user_listens l JOIN podcasts p ON p.id = l.podcast_id
                    WHERE l.user_id = u.id AND p.status = 'ready') AS listened_mean
            FROM users u WHERE u.id = %s FOR UPDATE
            """,
            (user_id,),
        )
        parts = cur.fetchone()
        history_profile = ranking.combine(parts["history_embedding"], parts["listened_mean"])
        feedback = ranking.decayed(
            parts["feedback_vector"], parts["feedback_age"], settings.feedback_half_life_days
        )
        profile = ranking.learned_profile(
            history_profile, parts["interest_embedding"], feedback, settings.feedback_weight
        )
        cur.execute(
            "UPDATE users SET history_profile = %s, embedding = %s WHERE id = %s",
            (history_profile, profile, user_id),
        )


def get_user(conn, user_id: str) -> dict[str, Any] | None:
    """The user's profile and texts, and what a page computed from them depends on: `version`
    (the row's xmin) changes with any write to it, `model_version` with the collaborative model."""
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            SELECT u.id, u.name, u.listening_history, {embedding} AS embedding,
                   {history_profile} AS history_profile, u.interest_profile, u.reasons_valid_from,
                   now() AS read_at, u.xmin::text AS version,
                   (SELECT xmin::text FROM collaborative_model) AS model_version
            FROM users u WHERE u.id = %s
            """.format(embedding=binary("u.embedding"), history_profile=binary("u.history_profile")),
            (user_id,),
        )
        user = cur.fetchone()
    if user is not None:
        user["embedding"] = from_binary(user["embedding"])
        user["history_profile"] = from_binary(user["history_profile"])
    return user


# --- recommendations --------------------------------------------------------------------


def exclusions(conn, user_id: str, window_hours: float) -> tuple[list[int], set[int]]:
    """(never recommend: listened, liked, rated, completed or disliked; suggested within the window).

    Passed to the candidate queries as a plain `id <> ALL(...)` filter: a NOT EXISTS in the
    nearest-neighbour query would make the planner join first and give up the index scan."""
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT podcast_id, false FROM user_listens WHERE user_id = %(u)s
            UNION
            SELECT podcast_id, false FROM feedback_events
            WHERE user_id = %(u)s AND event IN ('like', 'dislike', 'complete', 'rate')
            UNION
            SELECT podcast_id, true FROM suggested_podcasts
            WHERE user_id = %(u)s AND suggested_at > now() - make_interval(secs => %(window)s)
            """,
            {"u": user_id, "window": window_hours * 3600},
        )
        rows = cur.fetchall()
    return [pid for pid, recent in rows if not recent], {pid for pid, recent in rows if recent}


# The shape of a recommendation candidate: `{source}` yields podcast ids. `popularity` is the
# prior in [0, 1): log of the decayed engagement against log of the listeners the model knows,
# so one like in a large audience counts for little. A reason written for this user since
# `valid_from` comes along with the evidence it was written from (the caller checks that the
# evidence still holds). The model's audience is a scalar subquery, not a join: joined, its
# never-analyzed one-row table made Postgres 18 sort the whole catalog (58 ms instead of 7 at
# 10k episodes).
CANDIDATE_SQL = """
    SELECT p.id AS podcast_id, p.title, p.summary, p.category, {embedding} AS embedding,
           p.embedding <=> %(q)s AS distance, coalesce(e.listeners, 0) AS listeners,
           coalesce(
               ln(1 + greatest(e.popularity, 0)) / ln(2 + (SELECT listeners FROM collaborative_model)), 0
           ) AS popularity,
           r.reason AS cached_reason, r.evidence AS cached_evidence
    FROM ({source}) c JOIN podcasts p ON p.id = c.podcast_id
    LEFT JOIN podcast_engagement e ON e.podcast_id = p.id
    LEFT JOIN reasons r
        ON r.user_id = %(user_id)s AND r.podcast_id = p.id AND r.written_at >= %(valid_from)s
    ORDER BY distance
""".replace("{embedding}", binary("p.embedding"))


def _candidates(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["embedding"] = from_binary(row["embedding"])
        distance = row.pop("distance")
        row["similarity"] = None if distance is None else 1.0 - float(distance)
        row["popularity"] = float(row["popularity"])
    return rows


def candidate_podcasts(
    conn,
    query: np.ndarray,
    count: int,
    *,
    user_id: str,
    excluded: list[int],
    reasons_valid_from: Any,
    category: str | None = None,
    ef_search: int = 100,
) -> list[dict[str, Any]]:
    """Up to `count` ready, not excluded podcasts nearest to `query` by cosine (HNSW)."""
    source = """
        SELECT p.id AS podcast_id FROM podcasts p
        WHERE p.status = 'ready' AND p.id <> ALL(%(excluded)s::bigint[])
          AND (%(category)s::text IS NULL OR p.category = %(category)s)
        ORDER BY {order} LIMIT %(k)s
    """
    params = {"q": query, "category": category, "user_id": user_id, "k": count}
    params |= {"valid_from": reasons_valid_from, "excluded": excluded}
    with dict_cursor(conn) as cur:
        sql = CANDIDATE_SQL.replace("{source}", source)
        return _candidates(nearest(cur, sql, params, count, ef_search, filtered_out=len(excluded)))


def candidates_by_id(
    conn, ids: Sequence[int], query: np.ndarray | None, *, user_id: str, reasons_valid_from: Any
) -> list[dict[str, Any]]:
    """The candidate rows of the given podcasts (e.g. found by co-engagement)."""
    if not ids:
        return []
    params = {"q": query, "ids": list(ids), "user_id": user_id, "valid_from": reasons_valid_from}
    with dict_cursor(conn) as cur:
        source = "SELECT unnest(%(ids)s::bigint[]) AS podcast_id"
        cur.execute(CANDIDATE_SQL.replace("{source}", source), params)
        return _candidates(cur.fetchall())


# The HNSW probe's plan settings (transaction-local), with hnsw.ef_search as the parameter.
PROBE_SETTINGS = "set_config('enable_seqscan', 'off', true), set_config('hnsw.ef_search', %s, true)"


def nearest(
    cur, sql: str, params: dict[str, Any], wanted: int, ef_search: int, filtered_out: int = 0
) -> list[dict[str, Any]]:
    """Run a nearest-neighbour query whose ORDER BY is `{order}`, through the HNSW index.

    The index scan applies WHERE filters to the ef_search nearest it finds, so selective
    filters can leave fewer than `wanted` rows: ef_search grows with the rows known to be
    filtered out, pgvector >= 0.8 keeps scanning (iterative scans), and older versions fall
    back to an exact scan when that is still not enough, the only way to be sure.

    Sequential scans are off for the probe alone, as pgvector advises: its cost model ignores
    out-of-line (TOAST) storage, so at 1536 dimensions a larger ef_search made Postgres pick a
    470 ms table scan over an 8 ms index scan (100k episodes, bench/findings.md).
    """
    candidates = min(max(ef_search, wanted + filtered_out), 1000)
    cur.execute(
        f"SELECT current_setting('enable_seqscan') AS seqscan, {PROBE_SETTINGS}"
        + (", set_config('hnsw.iterative_scan', 'relaxed_order', true)" if _iterative_scan else ""),
        (str(candidates),),
    )
    seqscan = cur.fetchone()["seqscan"]  # a dict cursor's row
    cur.execute(sql.format(order="p.embedding <=> %(q)s"), params)
    rows = cur.fetchall()
    cur.execute("SELECT set_config('enable_seqscan', %s, true)", (seqscan,))
    if len(rows) < wanted:
        cur.execute(sql.format(order="(p.embedding <=> %(q)s) + 0"), params)  # not indexable: exact
        rows = cur.fetchall()
    return rows


def search_podcasts(
    conn,
    query: np.ndarray,
    limit: int,
    *,
    category: str | None = None,
    language: str | None = None,
    max_duration_seconds: int | None = None,
    published_after: Any = None,
    ef_search: int = 100,
) -> list[dict[str, Any]]:
    """The `limit` ready podcasts nearest to `query` that pass every given filter."""
    params = {"q": query, "k": limit, "category": category, "language": language}
    params |= {"max_duration": max_duration_seconds, "published_after": published_after}
    sql = """
        SELECT * FROM (
            SELECT p.id AS podcast_id, p.title, p.summary, p.category, p.language, p.duration_seconds,
                   p.published_at, 1 - (p.embedding <=> %(q)s) AS score
            FROM podcasts p
            WHERE p.status = 'ready'
              AND (%(category)s::text IS NULL OR p.category = %(category)s)
              AND (%(language)s::text IS NULL OR p.language = %(language)s)
              AND (%(max_duration)s::int IS NULL OR p.duration_seconds <= %(max_duration)s)
              AND (%(published_after)s::timestamptz IS NULL OR p.published_at > %(published_after)s)
            ORDER BY {order} LIMIT %(k)s
        ) c ORDER BY score DESC
    """
    with dict_cursor(conn) as cur:
        return nearest(cur, sql, params, limit, ef_search)


def negative_examples(conn, user_id: str, limit: int = 20) -> np.ndarray | None:
    """Vectors of the episodes this user most recently disliked, skipped or rated low."""
    with conn.cursor() as cur:
        cur.execute(
            """
            SELECT p.embedding FROM podcasts p JOIN (
                SELECT podcast_id, max(created_at) AS at FROM feedback_events
                WHERE user_id = %s AND weight < 0 GROUP BY podcast_id ORDER BY at DESC LIMIT %s
            ) n ON n.podcast_id = p.id
            WHERE p.status = 'ready'
            """,
            (user_id, limit),
        )
        vectors = [row[0] for row in cur.fetchall()]
    return np.vstack(vectors) if vectors else None


def written_reasons(
    conn, user_id: str, podcast_ids: Sequence[int], valid_from: Any
) -> dict[int, tuple[str, str]]:
    """(reason, evidence key) written for this user since `valid_from`, by podcast id."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT podcast_id, reason, evidence FROM reasons"
            " WHERE user_id = %s AND podcast_id = ANY(%s::bigint[]) AND written_at >= %s",
            (user_id, list(podcast_ids), valid_from),
        )
        return {pid: (reason, evidence) for pid, reason, evidence in cur.fetchall()}


def commit_asynchronously(conn) -> None:
    """This transaction's commit returns before its WAL is flushed. For what is a log (served
    suggestions, queued pages, written reasons): a crash of the server may lose its last fraction
    of a second, never consistency, and each request saves a disk flush."""
    with conn.cursor() as cur:
        cur.execute("SET LOCAL synchronous_commit = off")


def insert_suggestions(conn, user_id: str, variant: str, items: Sequence[dict[str, Any]]) -> list[int]:
    """One row per suggestion, in one statement; returns the ids in the order given."""
    with conn.cursor() as cur:
        rows = psycopg2.extras.execute_values(
            cur,
            "INSERT INTO suggested_podcasts"
            " (user_id, podcast_id, similarity, rank, reason, variant, strategy, reason_source)"
            " VALUES %s RETURNING id",
            [
                (
                    user_id,
                    i["podcast_id"],
                    i["similarity"],
                    i["rank"],
                    i["reason"],
                    variant,
                    i["strategy"],
                    i["reason_source"],
                )
                for i in items
            ],
            fetch=True,
        )
    return [row[0] for row in rows]


def save_reasons(conn, user_id: str, reasons: Sequence[tuple[int, str, str]], written_at: Any = None) -> None:
    """Store (podcast_id, evidence key, reason) for this user, replacing older ones.

    `written_at` is when the page they belong to was computed, so a profile that changed
    while the LLM was writing makes them stale rather than current."""
    with conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO reasons (user_id, podcast_id, evidence, reason, written_at) VALUES %s"
            " ON CONFLICT (user_id, podcast_id) DO UPDATE SET evidence = excluded.evidence,"
            " reason = excluded.reason, written_at = excluded.written_at",
            [(user_id, pid, key, reason, written_at) for pid, key, reason in reasons],
            template="(%s, %s, %s, %s, coalesce(%s, now()))",
        )


def queue_page(
    conn,
    user_id: str,
    page_size: int | None,
    category: str | None,
    delay: float,
    served_within_hours: float | None = None,
) -> None:
    """Ask for this user's next page to be prepared `delay` seconds from now; with
    `served_within_hours`, only if they were served a page, or had one prepared, that lately: a
    walk-in's first page does not commit an LLM call to a second they may never ask for.

    A later request moves the time on, so a burst of activity costs one preparation. Without a
    `page_size` (activity other than a served page) the last page's size and category stay."""
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO pages_due AS d (user_id, due_at, page_size, category)
            SELECT %(user)s, now() + make_interval(secs => %(delay)s), coalesce(%(size)s, %(default)s),
                   %(category)s
            WHERE %(hours)s::float8 IS NULL
               OR EXISTS (SELECT 1 FROM suggested_podcasts WHERE user_id = %(user)s
                          AND suggested_at > now() - make_interval(secs => %(hours)s::float8 * 3600))
               OR EXISTS (SELECT 1 FROM reasons WHERE user_id = %(user)s
                          AND written_at > now() - make_interval(secs => %(hours)s::float8 * 3600))
            ON CONFLICT (user_id) DO UPDATE SET due_at = excluded.due_at,
                page_size = coalesce(%(size)s, d.page_size),
                category = CASE WHEN %(size)s::int IS NULL THEN d.category ELSE excluded.category END
            """,
            {
                "user": user_id,
                "delay": delay,
                "size": page_size,
                "default": DEFAULT_PAGE_SIZE,
                "category": category,
                "hours": served_within_hours,
            },
        )


def queue_pages_of_active(conn, user_ids: Sequence[str], active_hours: float, delay: float) -> None:
    """Queue the next page of those of `user_ids` who were served a page lately, at the size of
    their last page. The others are not expected back soon: preparing pages for them (say, for
    events imported in bulk) would spend LLM calls on pages nobody reads."""
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO pages_due AS d (user_id, due_at, page_size)
            SELECT DISTINCT ON (user_id) user_id, now() + make_interval(secs => %(delay)s), rank
            FROM suggested_podcasts
            WHERE user_id = ANY(%(users)s::text[])
              AND suggested_at > now() - make_interval(secs => %(window)s)
            ORDER BY user_id, suggested_at DESC, rank DESC
            ON CONFLICT (user_id) DO UPDATE SET due_at = excluded.due_at
            """,
            {"delay": delay, "users": list(user_ids), "window": active_hours * 3600},
        )


def claim_due_pages(conn, limit: int, max_age_seconds: float) -> list[dict[str, Any]]:
    """Take up to `limit` due pages off the queue (SKIP LOCKED: several processes share it),
    the most recently due first: when the writer falls behind, the listeners active last are the
    likeliest to come back soon, and a backlog left by a busy spell does not hold up listeners
    active now. Pages due for longer than `max_age_seconds` are dropped: their listener has moved
    on (one who comes back is queued again)."""
    with dict_cursor(conn) as cur:
        cur.execute(
            "DELETE FROM pages_due WHERE due_at < now() - make_interval(secs => %s)", (max_age_seconds,)
        )
        cur.execute(
            """
            DELETE FROM pages_due WHERE user_id IN (
                SELECT user_id FROM pages_due WHERE due_at <= now()
                ORDER BY due_at DESC LIMIT %s FOR UPDATE SKIP LOCKED
            ) RETURNING user_id, page_size, category
            """,
            (limit,),
        )
        return cur.fetchall()


def seconds_to_next_page(conn) -> float | None:
    """How long until the next queued page is due (0 if one is due now; None if none is queued)."""
    with conn.cursor() as cur:
        cur.execute("SELECT greatest(extract(epoch FROM min(due_at) - now()), 0) FROM pages_due")
        [seconds] = cur.fetchone()
    return None if seconds is None else float(seconds)


PAGE_LOCK_CLASS = 4711  # first key of the per-user pg_advisory_xact_lock(int, int) of begin_page
# Suggestions older than this were committed before any page being prepared now was computed.
PREPARED_LOOKBACK = "1 hour"


def begin_page(conn, user_id: str) -> None:
    """Start a transaction that serves or stores this user's page: it commits asynchronously
    (see `commit_asynchronously`) and holds the user's page lock until it ends, so pages are
    served and stored one at a time and a page computed ahead is never stored over suggestions
    it did not see. One statement: this is on every request's path."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT set_config('synchronous_commit', 'off', true), pg_advisory_xact_lock(%s, hashtext(%s))",
            (PAGE_LOCK_CLASS, user_id),
        )


def newest_suggestion(conn, user_id: str) -> int:
    """The id of the user's newest suggestion (0 if none lately): a page computed now and stored
    later is stored only if none newer was served meanwhile."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT coalesce(max(id), 0) FROM suggested_podcasts"
            f" WHERE user_id = %s AND suggested_at > now() - interval '{PREPARED_LOOKBACK}'",
            (user_id,),
        )
        return cur.fetchone()[0]


def store_prepared_page(
    conn,
    user: dict[str, Any],
    page_size: int,
    category: str | None,
    variant: str,
    items: list[dict[str, Any]],
    seen: int | None = None,
) -> bool:
    """Keep a page computed from `user` (as `get_user` read it) for their next request, unless the
    listener changed since or, when `seen` is given (the page was computed in an earlier
    transaction, see `newest_suggestion`), was served a suggestion newer than `seen`. Call after
    `begin_page`. Returns whether it was stored."""
    with conn.cursor() as cur:
        cur.execute(
            f"""
            INSERT INTO prepared_pages AS pp
                (user_id, user_version, model_version, computed_at, page_size, category, variant, items)
            SELECT %(u)s, %(version)s::xid, %(model)s::xid, %(at)s, %(size)s, %(category)s, %(variant)s,
                   %(items)s
            WHERE EXISTS (SELECT 1 FROM users WHERE id = %(u)s AND xmin = %(version)s::xid)
              AND (%(seen)s::bigint IS NULL OR NOT EXISTS (
                  SELECT 1 FROM suggested_podcasts WHERE user_id = %(u)s AND id > %(seen)s
                    AND suggested_at > %(at)s - interval '{PREPARED_LOOKBACK}'))
            ON CONFLICT (user_id) DO UPDATE SET user_version = excluded.user_version,
                model_version = excluded.model_version, computed_at = excluded.computed_at,
                page_size = excluded.page_size, category = excluded.category, variant = excluded.variant,
                items = excluded.items
            WHERE pp.computed_at <= excluded.computed_at
            """,
            {
                "u": user["id"],
                "version": user["version"],
                "model": user["model_version"],
                "at": user["read_at"],
                "seen": seen,
                "size": page_size,
                "category": category,
                "variant": variant,
                "items": psycopg2.extras.Json(items),
            },
        )
        return cur.rowcount == 1


def take_prepared_page(conn, user_id: str) -> dict[str, Any] | None:
    """Remove the user's prepared page and return it with whether the listener and the
    collaborative model are as it was computed from (`current`) and its episodes as they are now:
    only those still ready, with their current title, summary and category. Call after
    `begin_page`."""
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            WITH page AS (DELETE FROM prepared_pages WHERE user_id = %s RETURNING *)
            SELECT page.user_version = (SELECT xmin FROM users WHERE id = page.user_id)
                   AND page.model_version = (SELECT xmin FROM collaborative_model) AS current,
                   page.page_size, page.category, page.variant,
                   extract(epoch FROM now() - page.computed_at) AS age_seconds,
                   jsonb_array_length(page.items) AS size,
                   (SELECT coalesce(jsonb_agg(i.item || jsonb_build_object(
                               'title', p.title, 'summary', p.summary, 'category', p.category)
                           ORDER BY i.n), '[]')
                    FROM jsonb_array_elements(page.items) WITH ORDINALITY AS i (item, n)
                    JOIN podcasts p ON p.id = (i.item ->> 'podcast_id')::bigint AND p.status = 'ready'
                   ) AS items
            FROM page
            """,
            (user_id,),
        )
        return cur.fetchone()


def purge_prepared_pages(conn, max_age_seconds: float) -> None:
    """Drop pages prepared for listeners who did not come back for them."""
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM prepared_pages WHERE computed_at < now() - make_interval(secs => %s)",
            (max_age_seconds,),
        )


def count_ai_calls(conn, purpose: str, calls: int = 1) -> None:
    """Add to today's count of LLM calls made for `purpose` (reasons, summaries, profiles)."""
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO ai_calls (day, purpose, calls) VALUES (current_date, %s, %s)"
            " ON CONFLICT (day, purpose) DO UPDATE SET calls = ai_calls.calls + excluded.calls",
            (purpose, calls),
        )


# --- feedback -----------------------------------------------------------------------------


def delete_user(conn, user_id: str) -> dict[str, int] | None:
    """Remove the user and, by cascade, their listens, feedback and suggestions."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM feedback_events WHERE user_id = %s),"
            " (SELECT count(*) FROM suggested_podcasts WHERE user_id = %s)",
            (user_id, user_id),
        )
        events, suggestions = cur.fetchone()
        cur.execute("DELETE FROM users WHERE id = %s", (user_id,))
        if cur.rowcount == 0:
            return None
    return {"feedback_events": events, "suggestions": suggestions}


def lock_users(conn, user_ids: Sequence[str]) -> set[str]:
    """Lock the rows of those of `user_ids` that exist for this transaction; returns their ids.

    Feedback for one user is applied one transaction at a time. The rows are locked in id
    order, so transactions that lock several users each cannot deadlock one another."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM users WHERE id = ANY(%s::text[]) ORDER BY id FOR UPDATE", (list(user_ids),)
        )
        return {row[0] for row in cur.fetchall()}


def podcast_vectors(conn, podcast_ids: Sequence[int]) -> dict[int, np.ndarray | None]:
    """The vector of each of `podcast_ids` that exists (None while it is pending)."""
    with conn.cursor() as cur:
        cur.execute("SELECT id, embedding FROM podcasts WHERE id = ANY(%s::bigint[])", (list(podcast_ids),))
        return dict(cur.fetchall())


def suggestion_owners(conn, suggestion_ids: Sequence[int]) -> dict[int, tuple[str, int]]:
    """(user_id, podcast_id) of each of `suggestion_ids` that exists."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id, user_id, podcast_id FROM suggested_podcasts WHERE id = ANY(%s::bigint[])",
            (list(suggestion_ids),),
        )
        return {row[0]: (row[1], row[2]) for row in cur.fetchall()}


FEEDBACK_FIELDS = ("user_id", "podcast_id", "suggestion_id", "event", "value", "weight", "event_id")
FEEDBACK_COLUMNS = "id, user_id, podcast_id, suggestion_id, event, value, weight, event_id, created_at"


def insert_feedback(conn, events: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
    """Store the events in one statement. Returns (row, created) per event, in order.

    An `(user_id, event_id)` stored before, or earlier in `events`, is not stored again: its
    stored row comes back with created False. Events without an `event_id` are always new."""
    keys = [(event["user_id"], event["event_id"]) for event in events]
    seen: set[tuple[str, str]] = set()
    new = []  # the first event with each (user_id, event_id), and every one without an event_id
    for index, key in enumerate(keys):
        if key[1] is None or key not in seen:
            seen.add(key)
            new.append(index)
    results: dict[int, tuple[dict[str, Any], bool]] = {}
    with dict_cursor(conn) as cur:
        inserted = []
        if new:
            inserted = psycopg2.extras.execute_values(
                cur,
                f"INSERT INTO feedback_events ({', '.join(FEEDBACK_FIELDS)}) VALUES %s"
                f" ON CONFLICT (user_id, event_id) DO NOTHING RETURNING {FEEDBACK_COLUMNS}",
                [tuple(events[i][name] for name in FEEDBACK_FIELDS) for i in new],
                page_size=len(new),
                fetch=True,
            )
        # Ids are drawn in insertion order: the inserted rows, by id, are the new events in
        # order, less those whose event_id was stored before.
        created = {(row["user_id"], row["event_id"]) for row in inserted}
        stored_now = [i for i in new if keys[i][1] is None or keys[i] in created]
        for index, row in zip(stored_now, sorted(inserted, key=lambda r: r["id"]), strict=True):
            if (row["user_id"], row["event_id"]) != keys[index]:
                raise RuntimeError("inserted feedback rows came back out of order")
            results[index] = row, True
        repeated = {keys[i] for i in range(len(events)) if i not in results}
        if repeated:
            users, event_ids = zip(*repeated, strict=True)
            cur.execute(
                f"SELECT {FEEDBACK_COLUMNS} FROM feedback_events WHERE (user_id, event_id) IN"
                " (SELECT * FROM unnest(%s::text[], %s::text[]))",
                (list(users), list(event_ids)),
            )
            stored = {(row["user_id"], row["event_id"]): row for row in cur.fetchall()}
            for index in range(len(events)):
                if index not in results:
                    results[index] = dict(stored[keys[index]]), False
    return [results[index] for index in range(len(events))]


def apply_feedback(conn, user_id: str, delta: np.ndarray | None, events: int = 1) -> None:
    """Fold new events into the user's decayed feedback vector and rebuild the profile, once.

    `delta` is the sum of weight * episode vector over the events (None if none of their
    episodes has a vector yet), `events` how many they are. Call with the user's row locked
    (`lock_users`) in the same transaction as `insert_feedback`.
    Feedback never touches `user_listens`: that is the stated history, which the `history_only`
    variant ranks by, and counting a completed episode there too would count it twice.
    """
    settings = get_settings()
    counts = "feedback_count = feedback_count + %(n)s, events_since_profile = events_since_profile + %(n)s"
    with conn.cursor() as cur:
        if delta is None:
            cur.execute(f"UPDATE users SET {counts} WHERE id = %(u)s", {"n": events, "u": user_id})
        else:
            cur.execute(
                "SELECT feedback_vector, extract(epoch FROM now() - feedback_at) FROM users WHERE id = %s",
                (user_id,),
            )
            stored, age = cur.fetchone()
            current = ranking.decayed(stored, age, settings.feedback_half_life_days)
            update = delta if current is None else current + delta
            cur.execute(
                f"UPDATE users SET feedback_vector = %(v)s, feedback_at = now(), {counts} WHERE id = %(u)s",
                {"v": update, "n": events, "u": user_id},
            )
    refresh_profile(conn, user_id)


# --- generated interest profiles ----------------------------------------------------------


def users_needing_interest_profile(conn, min_events: int, limit: int) -> list[dict[str, Any]]:
    """Users with enough new feedback since their profile was written, with what to write it from."""
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            SELECT u.id, u.listening_history, u.events_since_profile,
                   ARRAY(SELECT p.title FROM feedback_events f JOIN podcasts p ON p.id = f.podcast_id
                         WHERE f.user_id = u.id AND f.weight > 0
                         GROUP BY p.id, p.title ORDER BY sum(f.weight) DESC LIMIT 12) AS liked_titles,
                   ARRAY(SELECT p.title FROM feedback_events f JOIN podcasts p ON p.id = f.podcast_id
                         WHERE f.user_id = u.id AND f.weight < 0
                         GROUP BY p.id, p.title ORDER BY sum(f.weight) LIMIT 8) AS disliked_titles
            FROM users u WHERE u.events_since_profile >= %s
            ORDER BY u.events_since_profile DESC LIMIT %s
            """,
            (min_events, limit),
        )
        return cur.fetchall()


def save_interest_profile(conn, user_id: str, text: str, embedding: np.ndarray, events_seen: int) -> None:
    """Written reasons stay valid: each rests on its evidence, which a rewritten profile (a few
    more events' worth of drift) does not make untrue. A new stated history does invalidate them."""
    with conn.cursor() as cur:
        cur.execute(
            """
            UPDATE users SET interest_profile = %s, interest_embedding = %s, interest_profile_at = now(),
                             events_since_profile = greatest(events_since_profile - %s, 0)
            WHERE id = %s
            """,
            (text, embedding, events_seen, user_id),
        )
    refresh_profile(conn, user_id)


# --- idempotency keys ---------------------------------------------------------------------

IDEMPOTENCY_KEEP_HOURS = 24


def claim_idempotency_key(
    conn, key: str, route: str, fingerprint: str, lease_seconds: float
) -> tuple[str, int | None, str | None] | None:
    """Claim (key, route) for a request: None when claimed (new, or a claim of the same body
    abandoned for `lease_seconds`), else the stored (fingerprint, status, body); status None
    while the first request runs."""
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO idempotency_keys (key, route, fingerprint) VALUES (%s, %s, %s)
            ON CONFLICT (key, route) DO UPDATE SET claimed_at = now()
                WHERE idempotency_keys.status IS NULL AND idempotency_keys.fingerprint = EXCLUDED.fingerprint
                  AND idempotency_keys.claimed_at < now() - make_interval(secs => %s)
            RETURNING 1
            """,
            (key, route, fingerprint, lease_seconds),
        )
        if cur.fetchone():
            return None
        cur.execute(
            "SELECT fingerprint, status, body FROM idempotency_keys WHERE key = %s AND route = %s",
            (key, route),
        )
        return cur.fetchone()


def finish_idempotency_key(conn, key: str, route: str, status: int | None, body: str | None) -> None:
    """Store the answer of the request that claimed the key, or (status None) release the key."""
    with conn.cursor() as cur:
        if status is None:
            cur.execute(
                "DELETE FROM idempotency_keys WHERE key = %s AND route = %s AND status IS NULL", (key, route)
            )
        else:
            cur.execute(
                "UPDATE idempotency_keys SET status = %s, body = %s"
                " WHERE key = %s AND route = %s AND status IS NULL",
                (status, body, key, route),
            )


def purge_idempotency_keys(conn) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM idempotency_keys WHERE claimed_at < now() - make_interval(hours => %s)",
            (IDEMPOTENCY_KEEP_HOURS,),
        )


# --- analytics ----------------------------------------------------------------------------


def suggestion_figures(conn, since: Any) -> list[dict[str, Any]]:
    """Suggestions, mean similarity and engaged suggestions (with a positive attributed event),
    overall and per variant, per day and per rank. `grouped_by` tells which row is which."""
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            WITH s AS (
                SELECT s.variant, s.rank, s.similarity, (s.suggested_at AT TIME ZONE 'UTC')::date AS day,
                       EXISTS (SELECT 1 FROM feedback_events f
                               WHERE f.suggestion_id = s.id AND f.weight > 0) AS engaged
                FROM suggested_podcasts s WHERE s.suggested_at >= %s
            )
            SELECT CASE GROUPING(variant, day, rank) WHEN 7 THEN 'all' WHEN 3 THEN 'variant'
                        WHEN 5 THEN 'day' ELSE 'rank' END AS grouped_by,
                   variant, day, rank, count(*) AS suggestions, avg(similarity) AS average_similarity,
                   count(*) FILTER (WHERE engaged) AS engaged
            FROM s GROUP BY GROUPING SETS ((), (variant), (day), (rank))
            ORDER BY grouped_by, variant, day, rank
            """,
            (since,),
        )
        return cur.fetchall()


def ai_call_figures(conn, since: Any) -> list[dict[str, Any]]:
    """LLM calls per day and purpose since the day of `since`."""
    with dict_cursor(conn) as cur:
        cur.execute(
            "SELECT day, purpose, calls FROM ai_calls WHERE day >= (%s AT TIME ZONE 'UTC')::date"
            " ORDER BY day, purpose",
            (since,),
        )
        return cur.fetchall()


def event_figures(conn, since: Any) -> list[dict[str, Any]]:
    """Counts of each event kind, overall and per variant of the suggestion they answer."""
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            SELECT s.variant, f.event, count(*) AS events
            FROM feedback_events f LEFT JOIN suggested_podcasts s ON s.id = f.suggestion_id
            WHERE f.created_at >= %s
            GROUP BY GROUPING SETS ((f.event), (s.variant, f.event))
            """,
            (since,),
        )
        return cur.fetchall()


def engaged_podcasts(conn, since: Any, limit: int = 100) -> list[dict[str, Any]]:
    """The episodes with the most positive engagement since `since`, with their vectors."""
    with dict_cursor(conn) as cur:
        cur.execute(
            """
            SELECT p.id AS podcast_id, p.title, p.category, p.embedding, sum(f.weight) AS engagement
            FROM feedback_events f JOIN podcasts p ON p.id = f.podcast_id
            WHERE f.created_at >= %s AND f.weight > 0 AND p.status = 'ready'
            GROUP BY p.id ORDER BY engagement DESC LIMIT %s
            """,
            (since, limit),
        )
        rows = cur.fetchall()
    for row in rows:
        row["engagement"] = float(row["engagement"])
    return rows


def suggestions_with_outcomes(conn, since: Any) -> Iterator[dict[str, Any]]:
    """Every suggestion since `since` with the events attributed to it, streamed from the server."""
    with conn.cursor(name="export_suggestions", cursor_factory=DictCursor) as cur:
        cur.execute(
            """
            SELECT s.id AS suggestion_id, s.user_id, s.podcast_id, p.title, s.variant, s.strategy, s.rank,
                   s.similarity, s.reason, s.reason_source, s.suggested_at,
                   coalesce(json_agg(json_build_object('event', f.event, 'value', f.value,
                                                       'weight', f.weight, 'at', f.created_at)
                                     ORDER BY f.created_at) FILTER (WHERE f.id IS NOT NULL), '[]') AS events,
                   CASE WHEN bool_or(f.weight > 0) THEN 'positive'
                        WHEN bool_or(f.weight < 0) THEN 'negative' ELSE 'none' END AS outcome
            FROM suggested_podcasts s JOIN podcasts p ON p.id = s.podcast_id
            LEFT JOIN feedback_events f ON f.suggestion_id = s.id
            WHERE s.suggested_at >= %s
            GROUP BY s.id, p.title ORDER BY s.id
            """,
            (since,),
        )
        yield from cur
