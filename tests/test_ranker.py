"""The learned ranker: features, training and adoption against the hand-set blend (pure), and over
HTTP on the real database: it trains from logged suggestions and what listeners did with them,
and changes the order of a page; the blend serves until then."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import psycopg2
import pytest

from recommender.model import ndcg, ranker
from recommender.model.ranking import BlendWeights
from recommender.store import collaborative
from tests.conftest import ROOT, SAMPLE_DIR, run_api, wait_for

CONTENT_ONLY = BlendWeights(
    collaborative=0.0, factors=0.0, ease=0.0, content=1.0, popularity=0.0, negatives=1.0
)
COLUMN = {name: i for i, name in enumerate(ranker.FEATURES)}


def logged_pages(pages: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Pages of 5 where listeners enjoy what their factors match, whatever its text: the content
    blend ranks them badly, a learned model should not."""
    rng = np.random.default_rng(seed)
    x = rng.random((pages * 5, len(ranker.FEATURES))).astype(np.float32)
    x[:, COLUMN["exploration"]] = 0
    enjoyed = (x[:, COLUMN["factors"]] + 0.2 * rng.random(len(x)) > 0.8).astype(float)
    page = np.repeat(np.arange(pages), 5)
    return x, enjoyed, page, [f"listener-{p % (pages // 2)}" for p in page]


def test_features_describe_a_candidate_against_its_page():
    signals = ranker.Signals(
        co_engagement=np.array([2.0, 0.0, 1.0]),
        co_engagement_negative=np.array([-1.0, 0.0, 0.0]),
        ease=np.array([0.0, 0.3, 0.1]),
        ease_negative=np.array([0.0, -0.3, 0.0]),
        affinity=np.array([0.5, np.nan, 0.25]),
        similarity=np.array([0.3, 0.6, 0.1]),
        popularity=np.array([0.2, 0.0, 0.4]),
        disliked_closeness=np.array([-0.2, 0.7, 0.1]),
        category_share=np.array([0.5, 0.0, 0.5]),
        age_days=np.array([0.0, np.nan, 30.0]),
    )
    x = ranker.features(signals)
    assert x.shape == (3, len(ranker.FEATURES))
    assert np.allclose(x[:, COLUMN["co_engagement"]], [1.0, 0.0, 0.5])
    assert np.allclose(x[:, COLUMN["co_engagement_rank"]], [1.0, 0.0, 0.5])
    assert np.allclose(x[:, COLUMN["factors"]], [1.0, 0.0, 0.5])
    assert np.allclose(x[:, COLUMN["ease"]], [0.0, 1.0, 1 / 3])
    assert np.allclose(x[:, COLUMN["ease_rank"]], [0.0, 1.0, 0.5])
    assert np.allclose(x[:, COLUMN["co_engagement_negative"]], [-0.5, 0.0, 0.0])  # on co-engagement's scale
    assert np.allclose(x[:, COLUMN["ease_negative"]], [0.0, -1.0, 0.0])
    assert x[1, COLUMN["factors_rank"]] == 0  # no factors: no rank
    assert np.allclose(x[:, COLUMN["disliked_closeness"]], [0.0, 0.7, 0.1])
    assert np.allclose(x[:, COLUMN["recency"]], [1.0, 0.0, 0.5])
    assert not x[:, COLUMN["exploration"]].any()
    assert np.allclose(ranker.blend(x, CONTENT_ONLY)[0], [0.3, 0.6, 0.1])


def test_ndcg_gives_no_credit_for_ties():
    labels, page = np.array([0.0, 1.0]), np.zeros(2, int)
    assert list(ndcg.Pages.of(labels, page).ndcg(np.array([0.0, 1.0]))) == [1.0]
    assert ndcg.Pages.of(labels, page).ndcg(np.array([1.0, 1.0])) == pytest.approx([1 / np.log2(3)])
    nothing_enjoyed = ndcg.Pages.of(np.zeros(2), page)
    assert len(nothing_enjoyed.ndcg(np.array([1.0, 0.0]))) == 0  # not counted


def test_ndcg_scores_pages_of_any_size_at_once():
    """Pages of 3 and 6 rows side by side score as each would alone, ideal DCG from its own labels."""
    labels = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    page = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])
    scores = np.array([0.1, 0.9, 0.5, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    expected = [(1 / np.log2(4)) / 1.0, (1 / np.log2(3)) / (1 + 1 / np.log2(3))]  # page 1: its 6th is past k
    assert ndcg.Pages.of(labels, page).ndcg(scores) == pytest.approx(expected)


def test_a_model_that_beats_the_blend_on_held_out_listeners_is_adopted():
    x, enjoyed, page, listeners = logged_pages(400)
    trained = ranker.train(x, enjoyed, page, listeners, CONTENT_ONLY)
    assert trained is not None and trained.adopted
    assert trained.validation_ndcg > trained.blend_ndcg + 0.2
    assert set(trained.candidates_ndcg) == {"logistic", "lambdarank"}
    assert max(trained.importances, key=trained.importances.get) == "factors"
    assert trained.rows < len(x)  # the held-out listeners' pages are not fitted


def test_a_gain_within_chance_is_not_adopted():
    x, enjoyed, page, listeners = logged_pages(400, seed=2)
    noisy = np.where(np.random.default_rng(5).random(len(enjoyed)) < 0.45, 1 - enjoyed, enjoyed)
    few = page < 30  # a handful of held-out pages of mostly noise
    trained = ranker.train(
        x[few], noisy[few], page[few], [listeners[i] for i in np.flatnonzero(few)], CONTENT_ONLY
    )
    assert trained is not None and not trained.adopted


def test_the_blend_stays_when_the_learned_model_is_no_better():
    x, _, page, listeners = logged_pages(400, seed=1)
    enjoyed = (x[:, COLUMN["content"]] > 0.8).astype(float)  # exactly what the blend ranks by
    trained = ranker.train(x, enjoyed, page, listeners, CONTENT_ONLY)
    assert trained is not None and trained.blend_ndcg == 1.0 and not trained.adopted


def test_nothing_is_trained_without_pages_that_tell_a_hit_from_a_miss():
    x, _, page, listeners = logged_pages(40)
    assert ranker.train(x, np.zeros(len(x)), page, listeners, CONTENT_ONLY) is None


def test_a_logistic_model_scores_from_its_stored_form():
    x, enjoyed, _, _ = logged_pages(200)
    model = ranker._logistic(x, enjoyed)
    again = ranker.Ranker("logistic", json.loads(json.dumps({"m": model.model}))["m"])
    assert np.allclose(model.scores(x), again.scores(x))
    relevance = model.relevance(x)
    assert relevance.max() == 1.0 and (relevance > 0).all()


@pytest.mark.service
def test_the_ranker_learns_from_logged_pages_and_changes_the_order_of_a_page(create_database, tmp_path):
    """Listeners who enjoy only this year's episodes, whatever they are about: no blend of the
    generators' scores can tell (the fitted one serves meanwhile), the ranker, trained by the worker
    from what listeners were shown and did, can (recency is one of its features). Once it beats the
    fitted blend on held-out listeners it ranks, and a new listener's page starts with a new episode."""
    env = {"AI_PROVIDER": "local", "AB_SPLIT": "loop:100", "RANKER_RETRAIN_EVENTS": "100"}
    with run_api(create_database("ranker_api"), env, tmp_path / "ranker.log") as api:
        published = {}
        for item in json.loads((SAMPLE_DIR / "podcasts.json").read_text()):
            response = api.post("/api/add_podcast", item)
            assert response.status_code == 201
            published[response.json()["id"]] = item["published_at"]
        history = "I cook every day: recipes, baking bread, knife skills and kitchen science."

        def new(item: dict) -> bool:
            return published[item["podcast_id"]] >= "2026"

        def page(user_id: str) -> list[dict]:
            body = {"user_id": user_id, "listening_history": history}
            assert api.post("/api/update_user_history", body).status_code == 200
            response = api.get("/api/recommend_podcasts", params={"user_id": user_id, "limit": 10})
            assert response.status_code == 200, response.text
            return response.json()["recommendations"]

        before = page("probe")
        assert api.get("/api/health").json()["ranker"] == {"ranks": "blend", "version": None}
        assert not new(before[0])  # the blend's: the closest to cooking
        for n in range(60):
            user_id = f"cook-{n}"
            events = [
                {
                    "user_id": user_id,
                    "podcast_id": item["podcast_id"],
                    "suggestion_id": item["suggestion_id"],
                    "event": "like" if new(item) else "skip",
                }
                for item in page(user_id)
            ]
            assert api.post("/api/feedback", events).status_code == 200

        def adopted() -> dict | None:
            state = api.get("/api/health").json()["ranker"]
            return state if state["ranks"] == "learned" else None

        assert wait_for(adopted, timeout=60), api.log()[-3000:]
        state = adopted()
        assert state["validation_ndcg"] > state["blend_ndcg"] and state["adopted"]
        assert state["rows"] > 0 and set(state["importances"]) == set(ranker.FEATURES)
        after = page("probe-again")
        assert new(after[0]), [(i["title"], published[i["podcast_id"]]) for i in after]
        [(logged,)] = api.query(
            "SELECT count(*) FROM suggested_podcasts WHERE features IS NOT NULL AND user_id = 'probe-again'"
        )
        assert logged == len(after)  # what it ranked by is logged for the next training


@pytest.mark.service
def test_before_any_suggestion_the_ranker_learns_from_listeners_own_hidden_episodes(
    create_database, tmp_path
):
    """`cli.py train` with no suggestion logged: the ranker learns from pages recomputed with a
    fifth of each listener's episodes hidden (service/bootstrap.py), and nothing is written but it."""
    env = {"AI_PROVIDER": "local", "COLLAB_REFRESH_SECONDS": "1e6", "COLLAB_REFRESH_EVENTS": "1000000"}
    with run_api(create_database("ranker_bootstrap"), env, tmp_path / "bootstrap.log") as api:
        ids: dict[str, list[int]] = {}
        for item in json.loads((SAMPLE_DIR / "podcasts.json").read_text()):
            response = api.post("/api/add_podcast", item)
            ids.setdefault(item.get("category") or "", []).append(response.json()["id"])
        topics = sorted(topic for topic, episodes in ids.items() if len(episodes) >= 8)
        for n in range(60):
            topic = ids[topics[n % len(topics)]]
            listened = [topic[(n + k) % len(topic)] for k in range(6)]
            body = {"user_id": f"listener-{n}", "listened_podcast_ids": listened}
            assert api.post("/api/update_user_history", body).status_code == 200
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_", "AI_"))}
        env |= {"DATABASE_URL": api.dsn, "AI_PROVIDER": "local", "HF_HUB_OFFLINE": "1"}
        command = [sys.executable, "cli.py", "train"]
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "ranker v1" in result.stdout, result.stdout
        state = api.get("/api/health").json()["ranker"]
        assert state["version"] == 1 and state["rows"] > 0
        assert api.query("SELECT count(*) FROM suggested_podcasts") == [(0,)]


def test_sql_and_python_agree_on_what_the_models_never_see(postgres: str):
    """The snapshot leaves out (SQL) exactly what the bootstrap hides (Python)."""
    pairs = [(f"listener-{n}", podcast_id) for n in range(400) for podcast_id in (1, 7, 12345)]
    with psycopg2.connect(postgres) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT {collaborative.HELD_OUT}"
            " FROM unnest(%s::text[], %s::bigint[]) AS t(user_id, podcast_id)",
            ([u for u, _ in pairs], [p for _, p in pairs]),
        )
        in_sql = [row[0] for row in cur.fetchall()]
    in_python = [ranker.held_out(u, p) for u, p in pairs]
    assert in_sql == in_python
    assert 0.005 < np.mean(in_python) < 0.05  # about a tenth of listeners, a fifth of their episodes


def test_a_ranker_that_fails_to_train_still_lets_the_collaborative_model_refresh(monkeypatch):
    """The real-data replay of 2026-12-07 saw it: the ranker's query failed at every pass, and the
    collaborative model, trained after it by the same timer, was never refreshed again."""
    from recommender.worker import training

    refreshed = []

    def failing() -> bool:
        raise RuntimeError("the ranker's log could not be read")

    monkeypatch.setattr(training, "require_database", lambda: None)
    monkeypatch.setattr(training.ranker, "train_if_due", failing)
    monkeypatch.setattr(training.collaborative, "refresh_if_due", lambda: refreshed.append(True) or True)
    with pytest.raises(RuntimeError, match="could not be read"):
        training.train_pass(0)
    assert refreshed == [True]


def test_where_another_trainer_writes_the_model_the_timer_never_refreshes_it(monkeypatch):
    """`COLLAB_REFRESH_IN_SERVICE=false` (a Spark job trains it): never due, and no database is even
    asked how many events arrived."""
    from config import get_settings
    from recommender.worker import collaborative

    monkeypatch.setenv("COLLAB_REFRESH_IN_SERVICE", "false")
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")  # would fail if asked
    get_settings.cache_clear()
    try:
        assert collaborative.due() is False
    finally:
        get_settings.cache_clear()
