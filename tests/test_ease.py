"""EASE beside co-engagement (`model/ease.py`): pure on matrices made here, and on the real database:
the refresh stores its neighbours and the lambda it chose, and a request's probe scores them, a
disliked episode's neighbours against."""

from __future__ import annotations

import numpy as np
import psycopg2
import pytest
import scipy.sparse as sp

from recommender import store
from recommender.model import ease
from recommender.model.pages import Engagement
from tests.conftest import Api, user_in, wait_for_model


def taste_groups(listeners: int, groups: int, size: int, enjoyed: int, seed: int = 0) -> sp.csr_matrix:
    """Each listener enjoys `enjoyed` of the `size` episodes of one group (episode e is in group
    e % groups)."""
    rng = np.random.default_rng(seed)
    rows, columns = [], []
    for listener in range(listeners):
        group = rng.integers(groups)
        picked = rng.choice(size, enjoyed, replace=False) * groups + group
        rows += [listener] * enjoyed
        columns += picked.tolist()
    return sp.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(listeners, groups * size))


def hide(matrix: sp.csr_matrix, listeners: int, per_listener: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(what the model sees, what it does not): `per_listener` enjoyed episodes of the first
    `listeners` listeners moved to the second."""
    seen, hidden = matrix.tolil(copy=True), sp.lil_matrix(matrix.shape)
    for listener in range(listeners):
        for column in list(seen.rows[listener][:per_listener]):
            seen[listener, column], hidden[listener, column] = 0, 1
    return seen.tocsr(), hidden.tocsr()


def test_neighbours_are_the_episodes_enjoyed_with_it():
    seen, hidden = hide(taste_groups(600, groups=12, size=10, enjoyed=5), listeners=100, per_listener=2)
    fitted = ease.fit(seen, hidden, max_episodes=1000, neighbors=5)
    for column, neighbours in enumerate(fitted.columns):
        assert len(neighbours) == 5 and set(neighbours % 12) == {column % 12}, (column, neighbours)
        assert (fitted.weights[column] > 0).all() and (np.diff(fitted.weights[column]) <= 0).all()
    assert fitted.regularization in (*ease.LAMBDAS, *ease.WIDER) and fitted.validation_listeners == 100
    # The hidden episodes are in the same groups: nearly all are found among the top 20 (a random
    # ranking finds a sixth of them).
    assert fitted.validation_recall > 0.8


def test_the_closed_form_covers_the_most_enjoyed_episodes_only():
    matrix = taste_groups(300, groups=6, size=10, enjoyed=4)
    fitted = ease.fit(matrix, sp.csr_matrix(matrix.shape), max_episodes=20, neighbors=5)
    counts = matrix.getnnz(axis=0)
    inside = {column for column, neighbours in enumerate(fitted.columns) if len(neighbours)}
    inside |= {int(n) for neighbours in fitted.columns for n in neighbours}
    assert 10 <= len(inside) <= 20  # of the 60 episodes, only the 20 most enjoyed take part
    assert min(counts[list(inside)]) >= np.sort(counts)[-21]
    # Nothing held out: the middle lambda, and no evidence claimed.
    assert fitted.regularization == ease.LAMBDAS[len(ease.LAMBDAS) // 2]
    assert fitted.validation_recall is None and fitted.validation_listeners == 0


def test_the_lambda_is_chosen_on_the_held_out_episodes():
    """With hardly any data a large lambda keeps too little of it: the one chosen is the one that
    finds the hidden episodes best, and the recall reported is its recall."""
    seen, hidden = hide(
        taste_groups(400, groups=8, size=12, enjoyed=6, seed=3), listeners=150, per_listener=2
    )
    fitted = ease.fit(seen, hidden, max_episodes=1000, neighbors=10)
    rows = np.flatnonzero(hidden.getnnz(axis=1))
    recalls = {
        lam: ease._recall(
            ease._weights((seen.T @ seen).toarray(), lam),
            seen[rows],
            hidden[rows],
            hidden[rows].getnnz(axis=1),
        )
        for lam in ease.LAMBDAS
    }
    assert fitted.validation_recall == pytest.approx(max(recalls.values()))
    assert len(set(np.round(list(recalls.values()), 4))) > 1  # the lambdas differ here: the choice matters


@pytest.mark.parametrize(
    ("best", "tried"), [(300.0, ease.LAMBDAS), (10000.0, (*ease.LAMBDAS, 3000.0, 10000.0, 30000.0))]
)
def test_larger_lambdas_are_tried_only_while_the_largest_is_the_best(monkeypatch, best: float, tried: tuple):
    """Recall peaking at `best`: below 1,000 the wider lambdas are never fitted; above, the
    ladder climbs until the recall falls."""
    fitted_with: list[float] = []
    weights = ease._weights

    def recording(gram: np.ndarray, regularization: float) -> np.ndarray:
        fitted_with.append(regularization)
        return weights(gram, regularization)

    monkeypatch.setattr(ease, "_weights", recording)
    monkeypatch.setattr(ease, "_recall", lambda b, seen, hidden, counts: -abs(np.log(fitted_with[-1] / best)))
    seen, hidden = hide(taste_groups(200, groups=4, size=10, enjoyed=4), listeners=50, per_listener=1)
    chosen = ease.fit(seen, hidden, max_episodes=100, neighbors=5)
    assert chosen.regularization == best
    assert tuple(fitted_with[:-1]) == tried  # the last fit is the chosen lambda's, kept


@pytest.mark.service
def test_the_refresh_stores_ease_neighbours_and_the_probe_scores_them(local_api: Api):
    """After a refresh on the shared service: health says which lambda was chosen, and a listener's
    probe adds an episode's EASE weights to its neighbours, a dislike subtracting them."""
    ids = [
        row[0]
        for row in local_api.query("SELECT id FROM podcasts WHERE status = 'ready' ORDER BY id LIMIT 6")
    ]
    for n in range(8):  # listeners who enjoy the same few episodes, so they have EASE neighbours
        user_id = user_in("loop")
        body = {"user_id": user_id, "listening_history": "Anything.", "listened_podcast_ids": ids[n % 2 :: 2]}
        assert local_api.post("/api/update_user_history", body).status_code == 200
    wait_for_model(local_api)
    state = local_api.get("/api/health").json()["collaborative"]["ease"]
    assert state["regularization"] in (*ease.LAMBDAS, *ease.WIDER)
    [(episode, neighbour, weight)] = local_api.query(
        "SELECT podcast_id, ease_ids[1], ease_weights[1] FROM podcast_engagement"
        " WHERE cardinality(ease_ids) > 0 ORDER BY podcast_id LIMIT 1"
    )
    with psycopg2.connect(local_api.dsn) as conn:
        for judgement in (1.0, -1.0):
            mine = [Engagement(episode, judgement, "the listener's episode")]
            scores = store.collaborative.neighbour_scores(
                conn, mine, 50, include=[neighbour], excluded=[], filters=None
            )
            assert scores[neighbour].ease == pytest.approx(judgement * weight, rel=1e-5)
            assert scores[neighbour].because_of == episode
        best = store.collaborative.neighbour_scores(conn, mine, 50, include=[], excluded=[], filters=None)
        assert neighbour not in best  # disliked: its neighbours are no longer among the best
