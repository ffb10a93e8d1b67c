"""Postgres: the connection pool, transactions, migrations and the vector types.

Every query of the app lives in `recommender/store/`, one module per concern."""

from __future__ import annotations

import logging
import random
import select
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg2
import psycopg2.errors
import psycopg2.extras
import psycopg2.pool
from pgvector.psycopg2.vector import VectorAdapter

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
_on_commit: dict[int, list[Callable[[], None]]] = {}  # id(connection) -> what runs once it commits
_embedded_server: Any = None  # keeps the embedded Postgres alive while the process runs
iterative_scan = False  # set by migrate() from the pgvector version: 0.8 scans filtered indexes iteratively


class SchemaMismatchError(RuntimeError):
    """The database was built for another embedding model; the message says what to do."""


# Named by major version: a data directory only opens with the major version that wrote it.
EMBEDDED_PGDATA = "pgdata-18"


def embedded_database_url(data_dir: Path) -> str:
    """Start (or join) the embedded Postgres under `data_dir` and return its URL."""
    global _embedded_server
    try:
        with warnings.catch_warnings():  # without XDG_RUNTIME_DIR it keeps its lock file in /tmp: fine
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
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


def release_embedded_database() -> None:
    """This process no longer needs the embedded Postgres; the last to say so stops it (pgserver does
    at exit, but `--workers` processes end without exit handlers: it outlived Ctrl+C)."""
    global _embedded_server
    if _embedded_server is not None:
        _embedded_server.__exit__(None, None, None)  # its handle count: stops it if this is the last
        _embedded_server = None


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded_database_url(settings.data_dir)


class DatabaseBusyError(RuntimeError):
    """Every pooled connection stayed in use for POOL_WAIT_SECONDS."""


# Postgres aborted the transaction to resolve a deadlock or a serialization conflict: run it again.
TRANSIENT = (psycopg2.errors.DeadlockDetected, psycopg2.errors.SerializationFailure)
TRANSIENT_ATTEMPTS = 3

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
                settings.db_pool_min, settings.db_pool_max, database_url(settings),
                connect_timeout=10, keepalives=1, application_name="podcast-recommender",
            )  # fmt: skip
            _pool.minconn = settings.db_pool_max
        return _pool


def _checked_out(pool: psycopg2.pool.ThreadedConnectionPool) -> psycopg2.extensions.connection:
    """A pooled connection that still works. One the server may have closed is pinged first and
    replaced when it fails: one idle for IDLE_CHECK_SECONDS (Neon closes them when its compute
    scales to zero), or one whose socket has something to read while idle (a restarting Postgres
    tells its clients so, then closes them), so a restart costs no request a 503."""
    for _ in range(get_settings().db_pool_max + 1):  # each stale one is replaced, then a new one
        conn = pool.getconn()
        idle = time.monotonic() - _last_used.get(id(conn), 0.0)
        if idle < IDLE_CHECK_SECONDS and not select.select([conn], [], [], 0)[0]:
            return conn
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            conn.rollback()
            return conn
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            _last_used.pop(id(conn), None)
            pool.putconn(conn, close=True)
    raise DatabaseBusyError("no working database connection")


@contextmanager
def connection(wait_seconds: float = POOL_WAIT_SECONDS) -> Iterator[psycopg2.extensions.connection]:
    """A pooled connection inside one transaction: committed on success, rolled back on error;
    what `on_commit` registered runs once it committed.

    Waits for a free connection when all are in use, up to `wait_seconds` (DatabaseBusyError)."""
    pool = get_pool()
    slots = _pool_slots
    assert slots is not None
    if not slots.acquire(timeout=wait_seconds):
        raise DatabaseBusyError("no database connection became free in time")
    broken = False
    try:
        conn = _checked_out(pool)
        try:
            with conn:
                yield conn
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            broken = exc.pgcode is None  # the connection failed (not a statement): drop it
            raise
        finally:
            _last_used[id(conn)] = time.monotonic()
            callbacks = _on_commit.pop(id(conn), [])
            pool.putconn(conn, close=broken or conn.closed != 0)
    finally:
        slots.release()
    for callback in callbacks:  # reached only when the transaction committed
        callback()


class _Attempt:
    """One try of `transactions()`: a `connection()` whose transient failure is swallowed."""

    def __init__(self, last: bool) -> None:
        self.last, self.done = last, False
        self._connection: Any = None

    def __enter__(self) -> psycopg2.extensions.connection:
        self._connection = connection()
        return self._connection.__enter__()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: Any) -> bool:
        self._connection.__exit__(kind, error, trace)  # commits, or rolls back and re-raises
        self.done = kind is None
        if kind is not None and issubclass(kind, TRANSIENT) and not self.last:
            log.info("transaction retried after %s", kind.__name__)
            return True  # the next attempt runs the body again
        return False


def transactions(attempts: int = TRANSIENT_ATTEMPTS) -> Iterator[_Attempt]:
    """Run a write transaction again when Postgres aborted it to resolve a deadlock or a
    serialization conflict: nothing of it was committed, so the same body can simply run again.

        for attempt in db_utils.transactions():
            with attempt as conn:
                ...  # reads and writes; `return` works as in a plain `with`

    Each attempt is a `connection()`; the last one's failure is raised (an outage: 503)."""
    for number in range(attempts):
        attempt = _Attempt(last=number == attempts - 1)
        yield attempt
        if attempt.done:
            return
        time.sleep(random.uniform(0.005, 0.02) * 2**number)  # apart, so they do not meet again


def on_commit(conn: psycopg2.extensions.connection, callback: Callable[[], None]) -> None:
    """Run `callback` once the transaction of `conn` (from `connection()`) has committed; never if
    it rolls back. For what must not see the transaction's work before others can."""
    _on_commit.setdefault(id(conn), []).append(callback)


HOLDER_LOCK_CLASS = 4712  # first key of the pg_advisory_lock(int, int) that tells a live process
_holder: tuple[int, psycopg2.extensions.connection] | None = None
_holder_lock = threading.Lock()


def process_holder() -> int:
    """An id of this process that the database can tell is alive: the session advisory lock
    (HOLDER_LOCK_CLASS, id) stays granted while a connection of this process's own lives, which
    is until the process dies (or that connection breaks: it is opened again, same id, at the
    next call). A claim that names a holder whose lock is gone was abandoned."""
    global _holder
    with _holder_lock:
        if _holder is not None and _holder[1].closed == 0:
            try:
                with _holder[1].cursor() as cur:
                    cur.execute("SELECT 1")
                return _holder[0]
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                pass
        holder = _holder[0] if _holder is not None else random.randint(1, 2**31 - 1)
        conn = psycopg2.connect(database_url(get_settings()), application_name="podcast-holder")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s, %s)", (HOLDER_LOCK_CLASS, holder))
        _holder = holder, conn
        return holder


def try_advisory_lock(conn: psycopg2.extensions.connection, key: int) -> bool:
    """Take the session-level advisory lock `key` on `conn`, if no other session holds it; it is
    held until released or the connection closes (which a crashed process's does)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
        held = cur.fetchone()[0]
    if not conn.autocommit:
        conn.commit()
    return held


@contextmanager
def dedicated_connection(application_name: str) -> Iterator[psycopg2.extensions.connection]:
    """A connection of its own, outside the pool, for long work or session state (advisory locks,
    LISTEN) that must not hold or leave behind a pooled one; closing it releases both."""
    conn = psycopg2.connect(database_url(get_settings()), application_name=application_name)
    try:
        yield conn
    finally:
        conn.close()


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
        global iterative_scan
        iterative_scan = supports_iterative_scan(pgvector_version(cur))
    register_vector_types(conn)
    return sorted(applied)


def register_vector_types(conn) -> None:
    """pgvector's adapter writes numpy arrays as vectors; vectors are read back as float32 numpy
    arrays by a caster that parses in C (pgvector's parses in Python, 2-3x slower: this is on
    the recommend path, which reads dozens of candidate vectors per request). pgvector's own
    casters (`register_vector`) are never installed: for an instant they would turn every vector
    any thread reads into a `Vector`, which the maths does not take."""
    psycopg2.extensions.register_adapter(np.ndarray, VectorAdapter)
    with conn.cursor() as cur:
        cur.execute("SELECT to_regtype('vector')::oid, to_regtype('halfvec')::oid")  # halfvec: 0.7+
        oids = tuple(oid for oid in cur.fetchone() if oid is not None)
    caster = psycopg2.extensions.new_type(oids, "VECTOR_NUMPY", parse_vector)
    psycopg2.extensions.register_type(caster)


def parse_vector(text: str | None, _cursor: Any) -> np.ndarray | None:
    return None if text is None else np.fromstring(text[1:-1], sep=",", dtype=np.float32)


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
