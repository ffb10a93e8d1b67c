"""Synthetic catalogs: clustered unit vectors bulk-loaded with binary COPY, then the HNSW index.

The vectors imitate text embeddings rather than uniform noise: a few hundred cluster centres
(topics) of Zipf-like popularity, each episode its centre plus gaussian noise whose variance
decays as 1/i over a random orthogonal basis (an effective dimension of about 25, as real
sentence embeddings have), normalised. Everything is derived from a seed, chunk by chunk, so a
catalog can be rebuilt identically.

A built catalog is recorded in the table `bench_catalog` of its database; a later run that finds
the same spec and the same migrations there skips loading. Otherwise the database is made anew:
migrated while empty, then loaded, then indexed.
"""

from __future__ import annotations

import io
import json
import struct
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import db_utils
from bench.db import connect, create_database, ensure_database, read_into_os_cache, scalar
from bench.report import log

EMBEDDING_MODEL = "fake-embedding"  # what the runner is started with, so migrations agree
INDEX_NAME = "podcasts_embedding_hnsw"
CATEGORIES = ("history", "science", "technology", "business", "comedy", "sports", "health", "music")
CHUNK_ROWS = 20_000
GENERATOR_VERSION = 1  # bump when the data changes, so cached catalogs are rebuilt


@dataclass(frozen=True)
class Spec:
    size: int
    dims: int
    clusters: int = 300
    spread: float = 0.9  # expected norm of the noise relative to the unit-length centre
    seed: int = 20_240_501
    storage: str = "vector"  # or "halfvec" (EMBEDDING_STORAGE)

    @property
    def database(self) -> str:
        suffix = "" if self.storage == "vector" else f"_{self.storage}"
        return f"bench_{self.size}_{self.dims}{suffix}"


@dataclass(frozen=True)
class Basis:
    centres: np.ndarray  # (clusters, dims), unit rows
    weights: np.ndarray  # cluster popularity, sums to 1
    scales: np.ndarray  # noise standard deviation per basis direction
    rotation: np.ndarray  # (dims, dims) orthogonal


def make_basis(spec: Spec) -> Basis:
    rng = np.random.default_rng([spec.seed, spec.dims])
    centres = rng.standard_normal((spec.clusters, spec.dims))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.sqrt(np.arange(1, spec.clusters + 1))
    variances = 1.0 / np.arange(1, spec.dims + 1)
    scales = spec.spread * np.sqrt(variances / variances.sum())
    rotation, _ = np.linalg.qr(rng.standard_normal((spec.dims, spec.dims)))
    return Basis(centres, weights / weights.sum(), scales, rotation)


def sample(basis: Basis, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` unit vectors around random centres; returns (vectors float32, cluster ids)."""
    clusters = rng.choice(len(basis.weights), size=count, p=basis.weights)
    noise = (rng.standard_normal((count, len(basis.scales))) * basis.scales) @ basis.rotation
    vectors = basis.centres[clusters] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), clusters


def episode_chunk(spec: Spec, basis: Basis, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    count = min(CHUNK_ROWS, spec.size - chunk * CHUNK_ROWS)
    return sample(basis, np.random.default_rng([spec.seed, spec.dims, chunk]), count)


def user_vectors(spec: Spec, count: int, salt: int) -> np.ndarray:
    """Listener profiles: near random cluster centres, like the episodes they would like."""
    vectors, _ = sample(make_basis(spec), np.random.default_rng([spec.seed, spec.dims, 10**6, salt]), count)
    return vectors


def vector_text(vector: np.ndarray) -> str:
    """pgvector's text form; 9 significant digits round-trip float32 exactly."""
    return "[" + ",".join(f"{x:.9g}" for x in vector) + "]"


# --- binary COPY --------------------------------------------------------------------------

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_COLUMNS = "title, summary, transcript, category, status, embedding"


def _text_field(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">i", len(data)) + data


def copy_chunk(
    start_id: int, vectors: np.ndarray, clusters: np.ndarray, storage: str = "vector"
) -> io.BytesIO:
    """One COPY ... (FORMAT binary) stream: header, rows, trailer. A vector is its dimension
    count, an unused int16 and big-endian float4s (halfvec: float2s)."""
    dims = vectors.shape[1]
    big_endian = vectors.astype(">f4" if storage == "vector" else ">f2")
    vector_head = struct.pack(">ihh", 4 + big_endian.itemsize * dims, dims, 0)
    parts = [COPY_HEADER]
    for row, (vector, cluster) in enumerate(zip(big_endian, clusters, strict=True)):
        category = CATEGORIES[cluster % len(CATEGORIES)]
        parts += [
            struct.pack(">h", 6),
            _text_field(f"Synthetic episode {start_id + row}"),
            _text_field(f"A {category} episode on topic {cluster}, synthetic benchmark data."),
            _text_field("x"),
            _text_field(category),
            _text_field("ready"),
            vector_head,
            vector.tobytes(),
        ]
    parts.append(struct.pack(">h", -1))
    return io.BytesIO(b"".join(parts))


# --- building and caching -------------------------------------------------------------------


def recorded(conn) -> dict[str, Any]:
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_catalog (key text PRIMARY KEY, value jsonb NOT NULL)")
        cur.execute("SELECT key, value FROM bench_catalog")
        return dict(cur.fetchall())


def record(conn, key: str, value: Any) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO bench_catalog VALUES (%s, %s)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (key, json.dumps(value)),
        )


def index_definition(conn) -> str:
    """The HNSW index as the migrations define it (kept once read, since it is dropped to load)."""
    known = recorded(conn).get("index_definition")
    if known:
        return known
    with conn.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (INDEX_NAME,))
        row = cur.fetchone()
    if row is None:
        raise RuntimeError(f"the migrations did not create {INDEX_NAME}")
    record(conn, "index_definition", row[0])
    return row[0]


def build_index(conn, definition: str, maintenance_work_mem: str) -> dict[str, Any]:
    """(Re)create the HNSW index from `definition`; returns its build time and size."""
    with conn.cursor() as cur:
        cur.execute(f"DROP INDEX IF EXISTS {INDEX_NAME}")
        cur.execute("SET maintenance_work_mem = %s", (maintenance_work_mem,))
        cur.execute("SET max_parallel_maintenance_workers = 1")
        started = time.perf_counter()
        cur.execute(definition)
        seconds = time.perf_counter() - started
        cur.execute("SELECT pg_relation_size(%s)", (INDEX_NAME,))
        size = cur.fetchone()[0]
    return {"build_seconds": round(seconds, 1), "index_mb": round(size / 2**20, 1)}


def hnsw_parameters(definition: str) -> dict[str, int]:
    """m and ef_construction from an index definition (pgvector's defaults when absent)."""
    params = {"m": 16, "ef_construction": 64}
    for name in params:
        marker = f"{name}='"
        if marker in definition:
            params[name] = int(definition.split(marker, 1)[1].split("'", 1)[0])
    return params


def migrations() -> list[str]:
    return [path.stem for path in db_utils.migration_files()]


def cached(dsn: str, kind: str, spec: dict[str, Any], generator: int) -> dict[str, Any] | None:
    """The record of what was built as `kind` in this database, if it was built for `spec` by
    this `generator` version under the current migrations.

    A catalog built under other migrations is not migrated in place: a migration that rewrites
    every row (and inserts every row again into the HNSW index) takes far longer at 1M rows
    than loading afresh.
    """
    conn = connect(dsn, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('bench_catalog') IS NOT NULL")
            done = recorded(conn).get(kind) if cur.fetchone()[0] else None
    finally:
        conn.close()
    fresh = (
        done
        and {"storage": "vector", **done["spec"]} == {"storage": "vector", **spec}  # recorded without it
        and done.get("generator") == generator
        and done.get("migrations") == migrations()
    )
    return done if fresh else None


def load_episodes(conn, spec: Spec) -> tuple[str, np.ndarray]:
    """Migrate the new database, drop the HNSW index and COPY in the episodes of `spec`;
    returns the index's definition and each episode's cluster (its topic)."""
    with conn:
        db_utils.migrate(conn, spec.dims, EMBEDDING_MODEL, spec.storage)
    conn.autocommit = True
    definition, basis, clusters = index_definition(conn), make_basis(spec), []
    with conn.cursor() as cur:
        cur.execute(f"DROP INDEX IF EXISTS {INDEX_NAME}")
        for chunk in range(-(-spec.size // CHUNK_ROWS)):
            vectors, topics = episode_chunk(spec, basis, chunk)
            stream = copy_chunk(chunk * CHUNK_ROWS + 1, vectors, topics, spec.storage)
            cur.copy_expert(f"COPY podcasts ({COPY_COLUMNS}) FROM STDIN WITH (FORMAT binary)", stream)
            clusters.append(topics)
    return definition, np.concatenate(clusters)


def build(server: Any, spec: Spec) -> dict[str, Any]:
    """Make sure database `spec.database` holds the catalog of `spec`; returns its record."""
    dsn = ensure_database(server, spec.database)
    done = cached(dsn, "catalog", asdict(spec), GENERATOR_VERSION)
    if done:
        with connect(dsn) as conn:  # as the service starts, which also says how its probe is planned
            db_utils.migrate(conn, spec.dims, EMBEDDING_MODEL, spec.storage)
        conn.close()
        read = read_into_os_cache(dsn)
        log(f"{spec.database}: cached ({spec.size} episodes, {spec.dims} dims; {read / 2**20:,.0f} MiB read)")
        return {**done, "dsn": dsn}
    log(f"{spec.database}: building {spec.size} episodes of {spec.dims} dims in a new database")
    dsn = create_database(server, spec.database)
    conn = connect(dsn)
    try:
        started = time.perf_counter()
        definition, _ = load_episodes(conn, spec)
        load_seconds = time.perf_counter() - started
        log(f"{spec.database}: loaded {spec.size} rows in {load_seconds:.0f} s; vacuum + index")
        with conn.cursor() as cur:
            cur.execute("VACUUM (ANALYZE) podcasts")
        memory = "6GB" if spec.size * spec.dims > 50_000_000 else "2GB"
        index = build_index(conn, definition, memory)
        log(f"{spec.database}: index built in {index['build_seconds']} s ({index['index_mb']} MiB)")
        with conn.cursor() as cur:
            cur.execute("ANALYZE podcasts")
            cur.execute("SELECT pg_total_relation_size('podcasts') - pg_relation_size(%s)", (INDEX_NAME,))
            table_mb = round(cur.fetchone()[0] / 2**20, 1)
        done = {
            "spec": asdict(spec),
            "generator": GENERATOR_VERSION,
            "migrations": migrations(),
            "load_seconds": round(load_seconds, 1),
            "table_mb": table_mb,
            "index_definition": definition,
            **hnsw_parameters(definition),
            **index,
        }
        record(conn, "catalog", done)
        return {**done, "dsn": dsn}
    finally:
        conn.close()


def create_users(dsn: str, ids: list[str], vectors: np.ndarray) -> None:
    """Listeners with a profile vector and no history, straight in SQL.

    Every profile column the schema has gets the vector (`history_profile` and the history
    text's own `history_embedding` too, when the migrations made them), so each A/B variant
    ranks from it, and a profile rebuilt after feedback keeps it, rather than falling back.
    """
    conn = connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
            " AND column_name IN ('embedding', 'history_profile', 'history_embedding')"
        )
        columns = sorted(row[0] for row in cur.fetchall())
        vector_params = ", %s::vector" * len(columns)
        cur.executemany(
            f"INSERT INTO users (id, name, {', '.join(columns)}) VALUES (%s, %s{vector_params})",
            [
                (uid, f"Listener {uid}", *[vector_text(v)] * len(columns))
                for uid, v in zip(ids, vectors, strict=True)
            ],
        )
    conn.close()


def reset_users(dsn: str) -> None:
    """Drop every listener and, by cascade, their listens, suggestions and cached reasons."""
    scalar(dsn, "TRUNCATE users CASCADE")
