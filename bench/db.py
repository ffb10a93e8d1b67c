"""The embedded Postgres used by the benchmarks: one server, one database per catalog."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import psutil
import psycopg2
from psycopg2.extensions import make_dsn, parse_dsn

WORK_DIR = Path(__file__).resolve().parent / ".work"


def start_server(data_dir: Path = WORK_DIR / "pg18") -> Any:  # by major version: see db_utils
    """Start (or join) the embedded Postgres under `data_dir`; the object keeps it alive."""
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(data_dir, cleanup_mode="stop")


def database_dsn(server: Any, name: str) -> str:
    return make_dsn(**{**parse_dsn(server.get_uri()), "dbname": name})


def ensure_database(server: Any, name: str) -> str:
    """Create database `name` if missing; returns its DSN."""
    if not scalar(server.get_uri(), "SELECT 1 FROM pg_database WHERE datname = %s", (name,)):
        scalar(server.get_uri(), f'CREATE DATABASE "{name}"')
    return database_dsn(server, name)


def create_database(server: Any, name: str, template: str | None = None) -> str:
    """Database `name` made anew: empty, or a copy of `template`; returns its DSN."""
    scalar(server.get_uri(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    scalar(server.get_uri(), f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return database_dsn(server, name)


def connect(dsn: str, autocommit: bool = False) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(dsn)
    conn.autocommit = autocommit
    return conn


def scalar(dsn: str, sql: str, params: Any = None) -> Any:
    conn = connect(dsn, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone() if cur.description else None
            return row[0] if row else None
    finally:
        conn.close()


def postgres_memory(server: Any) -> dict[str, float]:
    """Memory of the postmaster and all its children, in MiB.

    `rss_mb` sums resident sets (shared buffers are counted once per process that touched
    them, so it overstates); `pss_mb` shares each shared page among its users (the honest sum).
    """
    root = psutil.Process(server.get_pid())
    rss = pss = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    mib = 1024 * 1024
    return {"rss_mb": round(rss / mib, 1), "pss_mb": round(pss / mib, 1)}


def read_into_os_cache(dsn: str) -> int:
    """Read every table and index file of the database once, so the phases that follow find them
    in the OS page cache, as right after a build; returns the bytes read. Between runs the kernel
    may reclaim them (this machine runs proactive reclaim), and a cold phase then measures the
    disk: a 1M catalog's first requests took 13-62 s."""
    with connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT current_setting('data_directory'), array_agg(pg_relation_filepath(oid))"
            " FROM pg_class WHERE relkind IN ('r', 'i', 't', 'm') AND pg_relation_filepath(oid) IS NOT NULL"
        )
        data_dir, paths = cur.fetchone()
    read = 0
    for path in paths:
        first = Path(data_dir) / path  # then first.1, first.2, ... past 1 GiB
        more = (first.with_name(f"{first.name}.{n}") for n in itertools.count(1))
        for segment in itertools.takewhile(Path.exists, itertools.chain([first], more)):
            with segment.open("rb") as file:
                while chunk := file.read(1 << 24):
                    read += len(chunk)
    return read
