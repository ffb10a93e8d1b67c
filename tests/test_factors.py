"""The factor model (iALS): the fold-in a request does, the worker's training, and the table
contract: factors written by another implementation are served as they are."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psycopg2
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

import db_utils
from recommender import store
from recommender.model import factors
from recommender.model.collaborative import Interactions
from tests.conftest import ROOT, query, run_api, user_in, wait_for, wait_for_model


def test_the_fold_in_is_implicits_own_least_squares_for_a_listener():
    """A request solves what `implicit` solves for a listener, negative feedback included."""
    from implicit.cpu.als import AlternatingLeastSquares

    rng = np.random.default_rng(3)
    user_items = sp.random(60, 40, density=0.15, random_state=4, format="csr", dtype=np.float32)
    user_items.data = np.where(rng.random(user_items.nnz) < 0.2, -1.0, 1.0).astype(np.float32)
    with threadpool_limits(1, "blas"):  # as model/factors.py trains
        model = AlternatingLeastSquares(factors=8, regularization=2.0, alpha=5.0, iterations=5)
        model.fit(user_items, show_progress=False)
    y = np.asarray(model.item_factors, dtype=np.float64)
    row = user_items[7]
    expected = model.recalculate_user(7, row)  # implicit's own solve against the fixed item factors
    got = factors.fold_in(factors.gram(y), 2.0, 5.0, y[row.indices], row.data)
    assert np.allclose(got, expected, atol=1e-3)


def test_a_low_rating_after_a_listen_lowers_what_resembles_the_episode():
    """Net engagement below zero is `implicit`'s negative feedback: a confident 0, where the
    listen alone was a confident 1."""
    y = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]], dtype=np.float32)
    gram = factors.gram(y)
    listened = factors.fold_in(gram, 1.0, 5.0, y[[2, 0]], np.array([1.0, 1.0]))
    then_rated_low = factors.fold_in(gram, 1.0, 5.0, y[[2, 0]], np.array([1.0, -0.5]))
    assert (y @ then_rated_low)[1] < (y @ listened)[1] / 2  # the episode's neighbour fell
    assert (y @ then_rated_low)[3] > (y @ then_rated_low)[1]
    assert factors.fold_in(gram, 1.0, 5.0, y[[0]], np.array([-1.0])) is None  # nothing to want


SETTINGS = {"regularization": 1.0, "alpha": 5.0, "iterations": 10, "threads": 1}


def test_training_separates_two_audiences():
    listener = np.repeat(np.arange(40), 3)
    items = np.concatenate([rng_items(i) for i in range(40)])
    ones = np.ones(len(listener))
    interactions = Interactions(listener, items + 100, ones, np.zeros(len(listener)), ones > 0)
    assert factors.train(interactions, min_listeners=41, **SETTINGS) is None  # too few to fit
    trained = factors.train(interactions, min_listeners=40, **SETTINGS)
    assert trained is not None and trained.item_factors.shape == (10, factors.DIMENSIONS)
    assert np.allclose(trained.gram, factors.gram(trained.item_factors))
    y = {int(pid): row for pid, row in zip(trained.episodes, trained.item_factors, strict=True)}
    taste = factors.fold_in(trained.gram, 1.0, 5.0, np.vstack([y[100], y[101]]), np.ones(2))
    scores = {pid: float(row @ taste) for pid, row in y.items()}
    assert min(scores[p] for p in range(100, 105)) > max(scores[p] for p in range(105, 110))


def test_a_training_from_the_stored_factors_needs_few_passes():
    """Started from converged factors, three passes stay near where thirty went (0.04 apart here);
    from random factors three passes are far from it (1.5). Episodes the start does not know start
    small and random."""
    rng = np.random.default_rng(5)
    listener = np.repeat(np.arange(300), 8)
    taste = listener % 4  # four audiences of 15 episodes each, and some noise
    items = np.where(
        rng.random(len(listener)) < 0.8,
        taste * 15 + rng.integers(0, 15, len(listener)),
        rng.integers(0, 60, len(listener)),
    )
    ones = np.ones(len(listener))
    interactions = Interactions(listener, items + 1000, ones, np.zeros(len(listener)), ones > 0)
    options = {**SETTINGS, "min_listeners": 1}
    converged = factors.train(interactions, **{**options, "iterations": 30})
    start = (converged.episodes, converged.item_factors)
    warm = factors.train(interactions, **{**options, "iterations": 3}, start=start)
    cold = factors.train(interactions, **{**options, "iterations": 3})

    def distance(model: factors.Factors) -> float:
        similar, target = (
            model.item_factors @ model.item_factors.T,
            converged.item_factors @ converged.item_factors.T,
        )
        return float(np.linalg.norm(similar - target) / np.linalg.norm(target))

    assert distance(warm) < 0.1 < 1.0 < distance(cold)
    known = np.array([1000, 1002, 1005])
    begun = factors.initial_factors(np.array([1000, 1001, 1002]), known, converged.item_factors[:3])
    assert np.array_equal(begun[[0, 2]], converged.item_factors[[0, 1]])
    assert 0 < np.abs(begun[1]).max() <= 0.01


def rng_items(listener: int) -> np.ndarray:
    """Three of episodes 0-4 for even listeners, of 5-9 for odd ones."""
    return np.random.default_rng(listener).choice(5, 3, replace=False) + 5 * (listener % 2)


@pytest.mark.service
def test_factors_written_by_another_trainer_are_served(create_database, tmp_path):
    """The table contract: plain numpy writes `podcast_factors` and the fold-in constants, the
    service serves from them (the worker never refreshes here), and rewriting them changes a page."""
    env = {"AI_PROVIDER": "local", "AB_SPLIT": "loop:100", "COLLAB_REFRESH_SECONDS": "1e6"}
    env |= {"COLLAB_REFRESH_EVENTS": "1000000"}
    with run_api(create_database("factors_contract"), env, tmp_path / "factors.log") as api:
        texts = [
            ("Bread Baking at Home", "Sourdough starters, hydration and the oven spring of a loaf."),
            ("Knife Skills for Cooks", "Dicing onions, sharpening steel and the chef's grip."),
            ("The Moons of Jupiter", "Europa's ocean, Io's volcanoes and the Galileo probe."),
            ("Tax Law for Freelancers", "Deductions, quarterly estimates and invoices explained."),
        ]
        ids = []
        for title, transcript in texts:
            response = api.post("/api/add_podcast", {"title": title, "transcript": transcript})
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        bread, knives, moons, taxes = ids

        def write(rows: dict[int, np.ndarray]) -> None:
            y = np.vstack(list(rows.values()))
            with psycopg2.connect(api.dsn) as conn, conn.cursor() as cur:
                cur.execute("DELETE FROM podcast_factors")
                for pid, row in rows.items():
                    cur.execute("INSERT INTO podcast_factors VALUES (%s, %s)", (pid, str(row.tolist())))
                cur.execute(
                    "UPDATE collaborative_model SET refreshed_at = now(), factor_gram = %s::vector,"
                    " factor_regularization = 1, factor_alpha = 5, factor_episodes = %s,"
                    " factors_trained_by = 'numpy'",
                    (str(factors.gram(y).ravel().tolist()), len(rows)),
                )

        axis = np.eye(factors.DIMENSIONS)
        write({bread: axis[0], knives: axis[0], moons: axis[0], taxes: axis[1]})

        def first_for_a_bread_lover() -> dict:
            user_id = user_in("loop")
            body = {"user_id": user_id, "listening_history": "Baking bread.", "listened_podcast_ids": [bread]}
            assert api.post("/api/update_user_history", body).status_code == 200
            response = api.get("/api/recommend_podcasts", params={"user_id": user_id, "limit": 1})
            assert response.status_code == 200, response.text
            return response.json()["recommendations"][0]

        first = first_for_a_bread_lover()
        assert first["podcast_id"] in (knives, moons) and first["strategy"] == "collaborative"
        write({bread: axis[0], knives: axis[1], moons: axis[1], taxes: axis[0]})
        first = first_for_a_bread_lover()
        assert (first["podcast_id"], first["strategy"]) == (taxes, "collaborative"), first
        assert api.get("/api/health").json()["collaborative"]["factors"]["trained_by"] == "numpy"


@pytest.mark.service
def test_the_worker_trains_factors_once_enough_listeners_enjoyed_something(create_database, tmp_path):
    env = {"AI_PROVIDER": "local", "COLLAB_REFRESH_SECONDS": "0", "FACTOR_MIN_LISTENERS": "3"}
    with run_api(create_database("factors_worker"), env, tmp_path / "worker.log") as api:
        ids = []
        for n in range(4):
            body = {"title": f"Episode {n}", "transcript": f"Talk number {n}."}
            ids.append(api.post("/api/add_podcast", body).json()["id"])

        def listener(n: int) -> dict:
            body = {"user_id": f"listener-{n}", "listened_podcast_ids": ids[n % 2 :: 2]}
            assert api.post("/api/update_user_history", body).status_code == 200
            wait_for_model(api)
            return api.get("/api/health").json()["collaborative"]["factors"]

        listener(0)
        assert listener(1)["episodes"] == 0  # two listeners: too few to fit
        trained = listener(2)
        assert trained["episodes"] == 4 and trained["trained_by"].startswith("implicit")
        assert api.query("SELECT count(*) FROM podcast_factors") == [(4,)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_", "AI_"))}
        env |= {"DATABASE_URL": api.dsn, "AI_PROVIDER": "local", "HF_HUB_OFFLINE": "1"}

        def train(min_listeners: int, **settings: str) -> str:
            command = [sys.executable, "cli.py", "train"]
            run_env = env | {"FACTOR_MIN_LISTENERS": str(min_listeners), **settings}
            result = subprocess.run(
                command, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=120
            )
            assert result.returncode == 0, result.stderr
            return result.stdout

        assert "4 with factors" in train(3)  # a second table swapped in for the first
        assert "4 with factors" in train(3, FACTOR_WARM_ITERATIONS="2")
        factors_now = api.get("/api/health").json()["collaborative"]["factors"]
        assert factors_now["trained_by"].endswith("als, 2 passes from the stored factors"), factors_now
        indexes = "SELECT indexname FROM pg_indexes WHERE tablename = 'podcast_factors' ORDER BY 1"
        assert api.query(indexes) == [("podcast_factors_ip",), ("podcast_factors_pkey",)]
        api.query("DELETE FROM podcasts WHERE id = %s", (ids[3],))  # its factors go with it
        assert api.query("SELECT count(*) FROM podcast_factors WHERE podcast_id = %s", (ids[3],)) == [(0,)]
        assert "0 with factors" in train(4)  # trained again, with its own settings
        assert api.get("/api/health").json()["collaborative"]["factors"]["episodes"] == 0


def test_swapping_in_new_factors_never_deadlocks_with_a_request(create_database):
    """A request that has read `podcasts` and then reads the factors waits for the swap to commit
    and reads the new ones: the swap locks nothing but the factors table exclusively (the CI run of
    2026-12-07 died of the deadlock when dropping the old table locked `podcasts` too)."""
    dsn = create_database("factor_swap")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        db_utils.migrate(conn, 384, "test-model")
        cur.execute("INSERT INTO podcasts (title, transcript) VALUES ('a', 'x'), ('b', 'y') RETURNING id")
        ids = [pid for (pid,) in cur.fetchall()]
    y = np.eye(2, factors.DIMENSIONS, dtype=np.float32)
    model = factors.Factors(np.array(ids), y, factors.gram(y), 1.0, 5.0, "numpy", 2)
    with psycopg2.connect(dsn) as conn:
        store.factors.save(conn, model, 0.0)
    request = psycopg2.connect(dsn)
    try:
        with request.cursor() as cur:
            cur.execute("SELECT count(*) FROM podcasts")  # the request now holds a lock on podcasts
            with ThreadPoolExecutor(1) as pool:
                swap = pool.submit(_save, dsn, model)
                waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted"
                assert wait_for(lambda: swap.done() or query(dsn, waiting) != [(0,)], timeout=30)
                cur.execute("SELECT count(*) FROM podcast_factors")  # the old code's deadlock
                assert cur.fetchone() == (2,)
                request.commit()
                swap.result(timeout=30)
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM podcasts WHERE id = %s", (ids[0],))  # its factors go with it
            cur.execute("SELECT podcast_id FROM podcast_factors")
            assert cur.fetchall() == [(ids[1],)]
    finally:
        request.close()


def _save(dsn: str, model: factors.Factors) -> None:
    with psycopg2.connect(dsn) as conn:
        store.factors.save(conn, model, 0.0)


def test_the_snapshot_is_parsed_a_chunk_of_rows_at_a_time(monkeypatch):
    from recommender.store.collaborative import _Parsed

    monkeypatch.setattr(_Parsed, "CHUNK_ROWS", 2)
    parsed = _Parsed()
    rows = (
        "0\t17\t1\t0.5\t1\t0",
        "0\t9\t-0.3\t2\t0\t0",
        "1\t17\t1\t10\t1\t1",
        "2\t4\t0\t0\t1\t0",
        "2\t9\t1\t1\t1\t0",
    )
    for row in rows:
        parsed.write(row + "\n")
    assert len(parsed.columns[0]) == 2 and len(parsed.rows) == 1  # the text of two chunks is gone
    interactions = parsed.interactions()
    assert interactions.listener.tolist() == [0, 0, 2, 2]
    assert interactions.podcast_id.tolist() == [17, 9, 4, 9]
    assert np.allclose(interactions.engagement, [1, -0.3, 0, 1])  # 0: played, neither liked nor not
    assert np.allclose(interactions.age_days, [0.5, 2, 0, 1])
    assert interactions.consumed.tolist() == [True, False, True, True]
    held_out = parsed.interactions(held_out=True)  # set apart for validation, in the same pass
    assert held_out.listener.tolist() == [1] and held_out.podcast_id.tolist() == [17]


def test_copy_reads_its_rows_a_chunk_at_a_time_whatever_their_length():
    from recommender.store.bulk import _Lines

    lines = [f"{n}\t{'x' * (n * 7 % 23)}\n" for n in range(1000)]
    source, chunks = _Lines(iter(lines)), []
    while chunk := source.read(64):
        assert len(chunk) <= 64
        chunks.append(chunk)
    assert b"".join(chunks).decode() == "".join(lines) and len(chunks) > 100
