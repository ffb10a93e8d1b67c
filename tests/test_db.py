"""Migrations, schema checks and nearest-neighbour queries, straight against the embedded Postgres."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import numpy as np
import psycopg2
import pytest

import db_utils
from config import get_settings
from recommender import store
from recommender.store.podcasts import Filters

DIMS = 384


@pytest.fixture(scope="module")
def dsn(create_database) -> str:
    dsn = create_database("db_tests")
    with psycopg2.connect(dsn) as conn:
        db_utils.migrate(conn, DIMS, "test-model")
    return dsn


@pytest.fixture
def conn(dsn: str):
    connection = psycopg2.connect(dsn)
    yield connection
    connection.rollback()
    connection.close()


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def test_migrations_are_idempotent(dsn: str):
    with psycopg2.connect(dsn) as conn:
        first = db_utils.migrate(conn, DIMS, "test-model")
    with psycopg2.connect(dsn) as conn:
        second = db_utils.migrate(conn, DIMS, "test-model")
    assert first == second == [p.stem for p in db_utils.migration_files()]


def test_hnsw_cosine_index_exists(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'podcasts_embedding_hnsw'")
        [(definition,)] = cur.fetchall()
    assert "hnsw" in definition and "vector_cosine_ops" in definition


@pytest.mark.parametrize(("dims", "model"), [(1536, "test-model"), (DIMS, "another-model")])
def test_a_different_embedding_model_fails_with_what_to_do(dsn: str, dims: int, model: str):
    with psycopg2.connect(dsn) as conn, pytest.raises(db_utils.SchemaMismatchError) as error:
        db_utils.migrate(conn, dims, model)
    message = str(error.value)
    assert "test-model" in message and "DATABASE_URL" in message


def insert_podcasts(conn, vectors: np.ndarray, category: str) -> list[int]:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO podcasts (title, transcript, category, embedding, status)"
            " VALUES ('t', 'x', %s, %s, 'ready')",
            [(category, v) for v in vectors],
        )
        cur.execute("SELECT id FROM podcasts WHERE category = %s ORDER BY id", (category,))
        return [row[0] for row in cur.fetchall()]


@pytest.mark.parametrize("iterative", [True, False], ids=["pgvector-0.8-iterative", "older-exact-fallback"])
def test_filtered_search_returns_the_exact_top_k_even_when_the_index_filters_too_much(
    conn, iterative: bool, monkeypatch: pytest.MonkeyPatch
):
    """2000 'near' episodes surround the query; the 30 wanted ones are far away. The HNSW scan
    alone sees only ef_search candidates, none of them 'far': pgvector 0.8 keeps scanning the
    index (iterative scan), older versions need the exact scan, forced here on this server."""
    assert db_utils.iterative_scan, "the embedded server has pgvector >= 0.8"
    monkeypatch.setattr(db_utils, "iterative_scan", iterative)
    with conn.cursor() as cur:
        # As on a large catalog, where the HNSW index is the plan (rolled back after the test).
        cur.execute("SET LOCAL enable_seqscan = off; DROP INDEX podcasts_category")
    rng = np.random.default_rng(7)
    query = unit(rng.normal(size=DIMS))
    near = np.array([unit(query + 0.3 * rng.normal(size=DIMS)) for _ in range(2000)])
    far = np.array([unit(rng.normal(size=DIMS)) for _ in range(30)])
    insert_podcasts(conn, near, "near")
    far_ids = insert_podcasts(conn, far, "far")
    with conn.cursor() as cur:
        cur.execute("INSERT INTO users (id) VALUES ('filter-user')")
    scans_before = seq_scans_of_podcasts(conn)
    items = store.candidates.candidate_podcasts(
        conn,
        query,
        10,
        user_id="filter-user",
        taste=None,
        excluded=[],
        reasons_valid_from=datetime.now(UTC),
        filters=Filters(category="far"),
        ef_search=40,
    )
    exact = sorted(zip(far @ query, far_ids, strict=True), reverse=True)[:10]
    assert [i.podcast_id for i in items] == [pid for _, pid in exact]
    assert [i.similarity for i in items] == pytest.approx([s for s, _ in exact], abs=1e-5)
    exact_scan = seq_scans_of_podcasts(conn) > scans_before
    assert exact_scan is not iterative  # the index answered alone when it could


def seq_scans_of_podcasts(conn) -> int:
    """Sequential scans of `podcasts` in this transaction so far: how the exact fallback shows."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_stat_get_xact_numscans('podcasts'::regclass)")
        return cur.fetchone()[0]


@pytest.mark.parametrize("ef_search", [40, 200, 1000])
def test_the_probe_goes_through_the_index_whatever_the_planner_prefers(conn, ef_search: int):
    """On 200 episodes a table scan is cheaper, as Postgres thinks it is at 1536 dimensions
    (vectors stored out of line) with a large ef_search: the probe still uses the HNSW index,
    and the transaction's own setting comes back after it."""
    rng = np.random.default_rng(11)
    insert_podcasts(conn, np.array([unit(rng.normal(size=DIMS)) for _ in range(200)]), "small")
    with conn.cursor() as cur:
        cur.execute("INSERT INTO users (id) VALUES ('probe-user')")
    scans_before = seq_scans_of_podcasts(conn)
    items = store.candidates.candidate_podcasts(
        conn,
        unit(rng.normal(size=DIMS)),
        10,
        user_id="probe-user",
        taste=None,
        excluded=[],
        reasons_valid_from=datetime.now(UTC),
        ef_search=ef_search,
    )
    assert len(items) == 10
    assert seq_scans_of_podcasts(conn) == scans_before
    with conn.cursor() as cur:
        cur.execute("SHOW enable_seqscan")
        assert cur.fetchone()[0] == "on"


def test_iterative_scan_needs_pgvector_0_8():
    assert not db_utils.supports_iterative_scan("0.6.2")
    assert not db_utils.supports_iterative_scan("0.7.4")
    assert db_utils.supports_iterative_scan("0.8.0")
    assert db_utils.supports_iterative_scan("1.0.1")


# --- halfvec storage --------------------------------------------------------------------------


@pytest.mark.parametrize(("dims", "setting", "storage"), [
    (384, "auto", "vector"), (1536, "auto", "vector"), (3072, "auto", "halfvec"),
    (1536, "halfvec", "halfvec"), (3072, "vector", "vector"),
])  # fmt: skip
def test_storage_type_takes_halfvec_where_vector_cannot_be_indexed(dims: int, setting: str, storage: str):
    assert db_utils.storage_type(dims, setting) == storage


@pytest.fixture(scope="module")
def halfvec_dsn(create_database) -> str:
    dsn = create_database("db_tests_halfvec")
    with psycopg2.connect(dsn) as conn:
        db_utils.migrate(conn, DIMS, "test-model", "halfvec")
    return dsn


def test_halfvec_storage_stores_indexes_and_ranks(halfvec_dsn: str):
    rng = np.random.default_rng(11)
    query = unit(rng.normal(size=DIMS))
    vectors = np.array([unit(query + s * rng.normal(size=DIMS)) for s in (0.1, 0.5, 1.0, 3.0)])
    with psycopg2.connect(halfvec_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'podcasts'::regclass AND attname = 'embedding'"
        )
        assert cur.fetchone()[0] == f"halfvec({DIMS})"
        cur.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'podcasts_embedding_hnsw'")
        assert "halfvec_cosine_ops" in cur.fetchone()[0]
        ids = insert_podcasts(conn, vectors, "halved")
        cur.execute("INSERT INTO users (id) VALUES ('halfvec-user')")
        items = store.candidates.candidate_podcasts(
            conn, query, 4, user_id="halfvec-user", taste=None, excluded=[],
            reasons_valid_from=datetime.now(UTC), filters=Filters(category="halved"),
        )  # fmt: skip
        assert [i.podcast_id for i in items] == ids  # nearest first, as stored
        for item, vector in zip(items, vectors, strict=True):
            assert item.embedding.dtype == np.float32
            assert item.embedding == pytest.approx(vector, abs=2e-3)  # half precision
            assert item.similarity == pytest.approx(float(vector @ query), abs=2e-3)
        assert store.podcasts.vectors(conn, ids[:1])[ids[0]] == pytest.approx(vectors[0], abs=2e-3)
        conn.rollback()


def test_a_database_keeps_the_storage_it_was_made_with(halfvec_dsn: str):
    with psycopg2.connect(halfvec_dsn) as conn, pytest.raises(db_utils.SchemaMismatchError) as error:
        db_utils.migrate(conn, DIMS, "test-model", "vector")
    assert "EMBEDDING_STORAGE=halfvec" in str(error.value)


def test_a_prepared_page_is_stored_only_over_the_state_it_was_computed_from(dsn: str):
    """The page writer stores a page only if the listener did not change and was not served a
    suggestion after the page was computed (a request that came back before the writer was done)."""
    with psycopg2.connect(dsn) as setup, setup.cursor() as cur:
        [podcast_id] = insert_podcasts(setup, unit(np.ones((1, DIMS))), "prepared")
        cur.execute("INSERT INTO users (id) VALUES ('reader'), ('changed'), ('served')")

    def computed(
        user_id: str,
    ) -> tuple[store.users.User, int]:  # what the writer reads, in its own transaction
        with psycopg2.connect(dsn) as conn:
            return store.users.get(conn, user_id), store.pages.newest_suggestion(conn, user_id)

    def prepare(user: store.users.User, seen: int) -> bool:
        with psycopg2.connect(dsn) as conn:
            store.pages.begin_page(conn, user.id)
            items = [{"podcast_id": podcast_id, "strategy": "similar", "reason": None}]
            return store.pages.store_prepared(conn, user, 1, None, "loop", items, seen)

    reader, changed, served = computed("reader"), computed("changed"), computed("served")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE users SET name = 'Changed' WHERE id = 'changed'")
        cur.execute(
            "INSERT INTO suggested_podcasts (user_id, podcast_id, similarity, rank, reason, variant)"
            " VALUES ('served', %s, 0.5, 1, 'r', 'loop')",
            (podcast_id,),
        )
    assert prepare(*reader)
    assert not prepare(*changed)
    assert not prepare(*served)
    with psycopg2.connect(dsn) as conn:
        taken = store.pages.take_prepared(conn, "reader")
        assert taken["current"] and taken["size"] == 1
        assert [item["podcast_id"] for item in taken["items"]] == [podcast_id]
        assert taken["items"][0]["category"] == "prepared"  # the episode as it is now
        assert store.pages.take_prepared(conn, "reader") is None  # taken once
    assert prepare(*computed("reader"))
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("UPDATE collaborative_model SET refreshed_at = now()")  # the model was rebuilt
    with psycopg2.connect(dsn) as conn:
        assert not store.pages.take_prepared(conn, "reader")["current"]


def test_the_writer_takes_the_most_recently_due_pages_first_and_drops_stale_ones(dsn: str):
    """Behind a busy spell, the listeners active last are served first; a page due for longer
    than the maximum age is dropped, not prepared."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO users (id) VALUES ('due-early'), ('due-late'), ('due-stale'), ('not-due')")
        for user_id, seconds in (("due-early", -20), ("due-late", -5), ("due-stale", -700), ("not-due", 60)):
            store.pages.queue(conn, user_id, 5, None, seconds, default_size=5)
    with psycopg2.connect(dsn) as conn:
        assert [p["user_id"] for p in store.pages.claim_due(conn, 1, 600)] == ["due-late"]
        assert [p["user_id"] for p in store.pages.claim_due(conn, 5, 600)] == ["due-early"]
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT user_id FROM pages_due WHERE user_id LIKE 'due-%%' OR user_id = 'not-due'")
        assert cur.fetchall() == [("not-due",)]


def test_a_transaction_postgres_aborts_for_a_deadlock_runs_again(dsn: str, monkeypatch: pytest.MonkeyPatch):
    """Two writers lock two rows in opposite orders: Postgres aborts one, `transactions()` runs it
    again, and both writes are done once."""
    monkeypatch.setenv("DATABASE_URL", dsn)
    get_settings.cache_clear()
    monkeypatch.setattr(db_utils, "_pool", None)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE crossed (id int PRIMARY KEY, n int NOT NULL);"
            " INSERT INTO crossed VALUES (1, 0), (2, 0)"
        )
    both_hold_one = threading.Barrier(2)
    runs: list[int] = []

    def write(first: int, second: int) -> None:
        for attempt in db_utils.transactions():
            with attempt as conn, conn.cursor() as cur:
                runs.append(first)
                cur.execute("UPDATE crossed SET n = n + 1 WHERE id = %s", (first,))
                if runs.count(first) == 1:
                    both_hold_one.wait(timeout=10)
                cur.execute("UPDATE crossed SET n = n + 1 WHERE id = %s", (second,))

    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(write, (1, 2), (2, 1)))
        assert sorted(runs) in ([1, 1, 2], [1, 2, 2])  # one of them ran twice
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("SELECT n FROM crossed ORDER BY id")
            assert cur.fetchall() == [(2,), (2,)]
    finally:
        db_utils.get_pool().closeall()
        get_settings.cache_clear()


def test_generated_text_stored_before_the_check_is_checked_again(create_database, monkeypatch):
    """Rows written by an older check: what fails today's is replaced or forgotten, once."""
    from recommender.worker import recheck

    dsn = create_database("recheck")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        db_utils.migrate(conn, DIMS, "test-model")
        vector = unit(np.ones(DIMS))
        cur.execute(
            "INSERT INTO podcasts (title, transcript, summary, embedding, status) VALUES"
            " ('Bees', 'Bees dance to tell the hive where flowers are. Honey keeps for years.',"
            "  'Win at bee-prizes.ru/win, send your card number.', %s, 'ready'),"
            " ('Ants', 'Ants farm fungus.', 'Ants farm fungus in their nests.', %s, 'ready') RETURNING id",
            (vector, vector),
        )
        bees, ants = (row[0] for row in cur.fetchall())
        cur.execute(
            "INSERT INTO users (id, interest_profile) VALUES ('bob', 'Call +1 900 555 0199 for your prize.'),"
            " ('amy', 'Enjoys bees and ants.')"
        )
        cur.execute(
            "INSERT INTO reasons (user_id, podcast_id, evidence, reason) VALUES"
            " ('amy', %s, 'new', 'hxxp://bee-dance[.]top has more.'),"
            " ('amy', %s, 'new', 'A fine ant story.')",
            (bees, ants),
        )
        cur.execute("INSERT INTO topic_labels VALUES ('a', '<img src=x onerror=alert(1)>'), ('b', 'Insects')")
    monkeypatch.setenv("DATABASE_URL", dsn)
    get_settings.cache_clear()
    monkeypatch.setattr(db_utils, "_pool", None)
    try:
        assert recheck.recheck_stored(batch_size=1) > 0  # a row of each kind per pass
        while recheck.recheck_stored(batch_size=1):
            pass
        assert recheck.recheck_stored() == 0  # all checked with this check: nothing more to do
    finally:
        db_utils.get_pool().closeall()
        get_settings.cache_clear()
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, summary FROM podcasts ORDER BY id")
        summaries = dict(cur.fetchall())
        assert "bee-prizes" not in summaries[bees] and "hive" in summaries[bees]  # the transcript's
        assert summaries[ants] == "Ants farm fungus in their nests."
        cur.execute("SELECT id, interest_profile FROM users ORDER BY id")
        assert cur.fetchall() == [("amy", "Enjoys bees and ants."), ("bob", None)]
        cur.execute("SELECT reason FROM reasons")
        assert cur.fetchall() == [("A fine ant story.",)]
        cur.execute("SELECT label FROM topic_labels")
        assert cur.fetchall() == [("Insects",)]
