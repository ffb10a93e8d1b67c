"""Which generators to trust, fitted per deployment (`model/fusion.py`): pure on pages made here, and
over HTTP on the real database: a deployment whose listeners follow each other, not the text,
weights behaviour up; one whose listeners follow the text weights content up."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from recommender.model import fusion, ranker
from recommender.model.ranking import BlendWeights
from tests.conftest import ROOT, SAMPLE_DIR, run_api

COLUMN = {name: i for i, name in enumerate(ranker.FEATURES)}
EVEN = BlendWeights(collaborative=1.0, factors=1.0, ease=0.0, content=1.0, popularity=1.0, negatives=1.0)


def candidate_pages(
    pages: int, led_by: str, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Pages of 20 candidates, 3 enjoyed, where the enjoyed ones stand out on `led_by` alone and
    every other signal is noise."""
    rng = np.random.default_rng(seed)
    x = rng.random((pages * 20, len(ranker.FEATURES))).astype(np.float32)
    enjoyed = np.zeros(len(x))
    for page in range(pages):
        hits = page * 20 + rng.choice(20, 3, replace=False)
        enjoyed[hits] = 1
        x[hits, COLUMN[led_by]] = 0.7 + 0.3 * rng.random(3)
    page_of = np.repeat(np.arange(pages), 20)
    return x, enjoyed, page_of, [f"listener-{p}" for p in page_of]


@pytest.mark.parametrize(("led_by", "signal"), [("co_engagement", "collaborative"), ("content", "content")])
def test_the_signal_that_predicts_this_data_is_weighted_up(led_by: str, signal: str):
    fitted = fusion.fit(*candidate_pages(200, led_by), EVEN)
    assert fitted is not None and fitted.adopted and fitted.pages == 200
    weights = {name: w for name, w in fitted.weights.__dict__.items() if name in fusion.SIGNALS}
    assert max(weights, key=weights.get) == signal
    assert fitted.weights.negatives == fusion.DEFAULT_NEGATIVES  # noise there: the events' own weights
    assert weights[signal] / sum(weights.values()) >= 0.7, weights
    assert fitted.validation_ndcg > fitted.configured_ndcg + 0.1
    assert max(fitted.components_ndcg, key=fitted.components_ndcg.get) == signal


def test_negative_engagement_that_misleads_is_discounted():
    """Where the neighbours of what listeners disliked are what they enjoy (on explicit ratings a
    film rated low was still watched), the fit stops counting the dislikes against them."""
    rng = np.random.default_rng(1)
    x, enjoyed, page_of, listeners = candidate_pages(200, "popularity")
    x[:, COLUMN["popularity"]] = 0.0
    x[:, [COLUMN["co_engagement_negative"], COLUMN["ease_negative"]]] = 0.0
    x[:, COLUMN["co_engagement"]] = rng.random(len(x)) * 0.6
    hits = enjoyed == 1
    x[hits, COLUMN["co_engagement_negative"]] = -0.5  # pulled down by a dislike from 0.8 to 0.3
    x[hits, COLUMN["co_engagement"]] = 0.3
    fitted = fusion.fit(x, enjoyed, page_of, listeners, EVEN)
    assert fitted is not None and fitted.adopted
    assert fitted.weights.negatives < fusion.DEFAULT_NEGATIVES and fitted.weights.collaborative > 0, fitted
    assert fitted.validation_ndcg > fitted.configured_ndcg + 0.2


def test_too_few_pages_keep_the_configured_blend():
    fitted = fusion.fit(*candidate_pages(fusion.MIN_PAGES - 1, "content"), EVEN)
    assert fitted is not None and not fitted.adopted


def test_configured_weights_that_are_already_right_are_kept():
    right = BlendWeights(collaborative=0.0, factors=0.0, ease=0.0, content=1.0, popularity=0.0, negatives=1.0)
    fitted = fusion.fit(*candidate_pages(200, "content"), right)
    assert fitted is not None and not fitted.adopted  # no point beats them out of sample
    weights = {name: w for name, w in fitted.weights.__dict__.items() if name in fusion.SIGNALS}
    assert max(weights, key=weights.get) == "content"


def test_nothing_is_fitted_without_a_page_that_tells_a_hit_from_a_miss():
    x, _, page_of, listeners = candidate_pages(30, "content")
    assert fusion.fit(x, np.zeros(len(x)), page_of, listeners, EVEN) is None


def test_a_fitted_blend_reads_back_from_its_stored_form():
    fitted = fusion.fit(*candidate_pages(40, "factors"), EVEN)
    assert fitted is not None
    assert fusion.FittedBlend.from_stored(json.loads(json.dumps(fitted.stored()))) == fitted


def train(api, settings: dict[str, str]) -> dict:
    """`cli.py train` against the service's database, with its settings: the models, then the
    ranker and the blend."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_", "AI_"))}
    env |= settings | {"DATABASE_URL": api.dsn, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "cli.py", "train"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    state = api.get("/api/health").json()["ranker"]
    assert state["blend"] is not None, result.stdout
    return state


def retold_catalogue() -> list[dict]:
    """The sample catalogue's 144 episodes, each told four times (its sentences in another order):
    the four tellings of an episode read alike, different episodes do not."""
    catalogue = []
    for item in json.loads((SAMPLE_DIR / "podcasts.json").read_text()):
        sentences = item["transcript"].split(". ")
        for part in range(4):
            told = sentences[part:] + sentences[:part]
            catalogue.append(
                item
                | {
                    "external_id": f"{item['external_id']}-{part}",
                    "title": f"{item['title']} ({part + 1})",
                    "transcript": ". ".join(told),
                }
            )
    return catalogue


def listener_ids(count: int, bootstrap: bool) -> list[str]:
    """Listener ids in the bootstrap's share (`model.ranker.held_out`: their hidden episodes are
    what the blend is fitted to find), or out of it."""
    names = (f"listener-{n}" for n in range(100_000))
    share = ranker.BOOTSTRAP_LISTENER_SHARE
    return [name for name in names if (ranker.unit_hash(name) < share) == bootstrap][:count]


def histories(kind: str, episodes: list[list[int]]) -> dict[str, list[int]]:
    """Who listened to what (`episodes`: the four tellings of each episode, by episode).

    `taste_groups`: 12 groups of 12 episodes from all topics, one telling each; every listener is
    in a group and listened to 8 of its 12: what they enjoy follows who they are like, not the text.
    `text`: each bootstrap listener listened to every telling of two episodes nobody else heard,
    so only the text can find the telling hidden from the models; the others listen in groups of
    the remaining episodes, so the models have something to learn."""
    rng = np.random.default_rng(3)
    order = rng.permutation(len(episodes))
    bootstrap, others = listener_ids(30, bootstrap=True), listener_ids(200, bootstrap=False)
    if kind == "taste_groups":
        groups = [
            [int(episodes[e][rng.integers(4)]) for e in order[12 * g : 12 * (g + 1)]] for g in range(24)
        ]
        return {
            user: rng.choice(groups[n % 12], 8, replace=False).tolist()
            for n, user in enumerate(bootstrap + others)
        }
    private, shared = order[: 2 * len(bootstrap)], order[2 * len(bootstrap) :]
    heard = {
        user: [*episodes[private[2 * n]], *episodes[private[2 * n + 1]]] for n, user in enumerate(bootstrap)
    }
    groups = [[int(episodes[e][0]) for e in shared[12 * g : 12 * (g + 1)]] for g in range(len(shared) // 12)]
    return heard | {
        user: rng.choice(groups[n % len(groups)], 8, replace=False).tolist() for n, user in enumerate(others)
    }


@pytest.mark.service
def test_each_deployment_learns_which_generator_to_trust_from_its_own_listeners(create_database, tmp_path):
    """Two deployments of one catalogue whose configured blend trusts popularity alone, wrongly for both;
    each fits other weights and ranks with them. Where listeners follow taste groups across topics,
    co-engagement is what finds their hidden episodes and leads the fitted blend; where what
    listeners enjoy shows only in the text, content does (and weighs more than in the first)."""
    catalogue = retold_catalogue()
    settings = {"AI_PROVIDER": "local", "COLLAB_REFRESH_SECONDS": "1e6", "COLLAB_REFRESH_EVENTS": "1000000"}
    settings |= {
        "BLEND_POPULARITY": "1",
        "BLEND_COLLABORATIVE": "0",
        "BLEND_FACTORS": "0",
        "BLEND_EASE": "0",
        "BLEND_CONTENT": "0",
    }
    states = {}
    for kind in ("taste_groups", "text"):
        with run_api(create_database(f"fusion_{kind}"), settings, tmp_path / f"{kind}.log") as api:
            ids = []
            for start in range(0, len(catalogue), 200):  # each embedded well within the client's timeout
                response = api.post("/api/add_podcasts", catalogue[start : start + 200])
                assert response.status_code == 200, response.text
                ids += [result["id"] for result in response.json()["results"]]
            episodes = [ids[4 * e : 4 * e + 4] for e in range(len(ids) // 4)]
            for user, listened in histories(kind, episodes).items():
                body = {"user_id": user, "listened_podcast_ids": listened}
                assert api.post("/api/update_user_history", body).status_code == 200
            states[kind] = train(api, settings)
    grouped, text = states["taste_groups"]["blend"], states["text"]["blend"]
    assert grouped["adopted"] and text["adopted"], json.dumps([grouped, text])
    grouped_alone, text_alone = grouped["components_ndcg"], text["components_ndcg"]
    behaviour_alone = max(grouped_alone["collaborative"], grouped_alone["ease"])
    assert behaviour_alone > grouped_alone["content"] + 0.2, grouped
    assert text_alone["content"] > max(text_alone["collaborative"], text_alone["ease"]) + 0.2, text

    def content_share(blend: dict) -> float:
        weights = blend["weights"]
        behaviour = weights["collaborative"] + weights["factors"] + weights["ease"]
        return weights["content"] / (weights["content"] + behaviour)

    assert content_share(grouped) < content_share(text), (grouped, text)
    assert states["taste_groups"]["ranks"] in ("fitted_blend", "learned")
