"""The model layer in process: the collaborative model against a brute-force computation, and a
page chosen from candidates. Pure functions, no database: milliseconds."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.model import collaborative, pages, ranking, topics
from recommender.model.collaborative import Interactions
from recommender.model.events import JUDGEMENTS, PairEvent, event_weight, faded_engagement, net_engagement
from recommender.model.pages import Candidate, Engagement
from recommender.model.variants import VARIANTS


def brute_force(x: np.ndarray, alpha: float) -> np.ndarray:
    """Asymmetric cosine of every pair of columns: c_ij / (n_i^a n_j^(1-a)), NaN where no
    listener enjoyed both (not neighbours) and on the diagonal."""
    together = x.T @ x
    counts = x.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = together / (counts[:, None] ** alpha * counts[None, :] ** (1 - alpha))
    scores[together == 0] = np.nan
    np.fill_diagonal(scores, np.nan)
    return scores


@pytest.mark.parametrize("k", [2, 50])
@pytest.mark.parametrize("block_pairs", [1, 20_000_000])  # a block per episode, or one block
def test_neighbours_are_the_top_k_of_the_brute_force_scores(
    k: int, block_pairs: int, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(collaborative, "BLOCK_PAIRS", block_pairs)
    rng = np.random.default_rng(3)
    x = (rng.random((40, 12)) < 0.3).astype(np.float32)
    expected = brute_force(x, alpha=0.7)
    model = collaborative.build(sp.csr_matrix(x), neighbors=k, alpha=0.7)
    for episode, (columns, scores) in enumerate(zip(model.columns, model.scores, strict=True)):
        known = expected[episode]
        neighbours = np.flatnonzero(~np.isnan(known))
        assert len(columns) == min(k, len(neighbours))
        assert set(columns) <= set(neighbours)
        assert scores == pytest.approx(known[columns], rel=1e-5)
        assert list(scores) == sorted(scores, reverse=True)
        left_out = np.setdiff1d(neighbours, columns)
        assert all(known[left_out] <= scores.min() + 1e-6) if len(left_out) else True


def test_the_stored_model_counts_listeners_and_decays_popularity():
    interactions = Interactions(
        listener=np.array([0, 0, 1, 1, 2]),
        podcast_id=np.array([10, 20, 10, 20, 30]),
        engagement=np.array([1.0, 1.0, 1.0, -1.0, 0.5]),
        age_days=np.array([0.0, 14.0, 0.0, 0.0, 28.0]),
        consumed=np.array([True, True, True, False, True]),
    )
    nothing_held_out = Interactions(*[np.array([], int)] * 5)
    learned = collaborative.learn_signal(interactions, nothing_held_out, ease_episodes=10, ease_neighbors=5)
    assert learned.signal == "judgement"  # nothing played went unenjoyed: consumption is not even tried
    assert learned.validation_recall == {"judgement": None}
    model = collaborative.model_of(learned, 5, alpha=0.5, half_life_days=14)
    assert list(model.episodes) == [10, 20, 30]
    assert list(model.listeners) == [2, 1, 1]  # a skip is not enjoying it
    assert model.popularity == pytest.approx([2.0, 0.5 - 1.0, 0.125])
    assert model.active_listeners == 3
    assert list(model.neighbor_ids[0]) == [20] and list(model.neighbor_ids[2]) == []
    nothing = collaborative.learn_signal(nothing_held_out, nothing_held_out, 10, 5)
    assert collaborative.model_of(nothing, 5, 0.5, 14) is None


def taste_groups(ratings_say: str) -> tuple[Interactions, Interactions]:
    """30 groups of 10 episodes, 20 listeners each, who play 3 of their group's episodes. `"little"`:
    they rate them at random (2 in 5 enjoyed), so what they play says more than the stars.
    `"everything"`: they enjoy those and also play 12 episodes of other groups, rated low, so
    playing says little. Held out: 2 more episodes of their group, enjoyed."""
    rng = np.random.default_rng(11)
    rows, held = [], []
    for listener in range(600):
        own = rng.permutation(10) + 10 * (listener % 30)
        for episode in own[:3]:
            enjoyed = ratings_say == "everything" or rng.random() < 0.4
            rows.append((listener, episode, 1.0 if enjoyed else -0.5))
        if ratings_say == "everything":
            rows += [
                (listener, e, -0.5) for e in rng.choice(np.setdiff1d(np.arange(300), own), 12, replace=False)
            ]
        held += [(listener, episode, 1.0) for episode in own[3:5]]

    def interactions(entries: list[tuple]) -> Interactions:
        listener, episode, weight = (np.array(column) for column in zip(*entries, strict=True))
        return Interactions(
            listener, episode + 1, weight, np.zeros(len(listener)), np.ones(len(listener), bool)
        )

    return interactions(rows), interactions(held)


@pytest.mark.parametrize(("ratings_say", "signal"), [("little", "consumption"), ("everything", "judgement")])
def test_the_models_learn_from_the_signal_that_predicts_the_held_out_episodes(ratings_say: str, signal: str):
    """On ratings data what a listener played can say more than how they rated it, or less: each
    deployment measures which on its own held-out episodes, and its models learn from that one."""
    seen, held_out = taste_groups(ratings_say)
    learned = collaborative.learn_signal(seen, held_out, ease_episodes=300, ease_neighbors=20)
    assert learned.signal == signal, learned.validation_recall
    recalls = learned.validation_recall
    other = next(name for name in recalls if name != signal)
    assert recalls[signal] > recalls[other] + 0.05  # clearly, not by a tie's rounding
    weights = learned.interactions.engagement
    assert (
        (weights[seen.engagement < 0] == 0.5).all() if signal == "consumption" else weights is seen.engagement
    )


def candidate(podcast_id: int, vector: list[float], **signals) -> Candidate:
    embedding = np.array(vector, dtype=np.float32) / np.linalg.norm(vector)
    return Candidate(podcast_id, f"Episode {podcast_id}", None, None, embedding, **signals)


def test_a_page_is_chosen_by_the_blend_and_recent_suggestions_only_when_fresh_ones_run_out():
    candidates = [
        candidate(1, [1, 0, 0], similarity=0.9),
        candidate(2, [0, 1, 0], similarity=0.5, collaborative=2.0, because_of=7),
        candidate(3, [0, 0, 1], similarity=0.8),
        candidate(4, [1, 1, 0], similarity=0.95),
    ]
    weights = ranking.BlendWeights(
        collaborative=1.0, factors=0.0, ease=0.0, content=0.1, popularity=0.0, negatives=1.0
    )
    no_exploring = VARIANTS["history_only"]
    chosen = pages.choose(candidates, {4}, 3, no_exploring, weights, None, random.Random(1))
    assert [(c.podcast_id, strategy) for c, strategy, *_ in chosen] == [
        (2, "collaborative"),
        (1, "similar"),
        (3, "similar"),
    ]
    assert [c.score for c in chosen] == sorted((c.score for c in chosen), reverse=True)
    fallback = pages.choose(candidates, {4}, 4, no_exploring, weights, None, random.Random(1))
    assert {c.podcast_id for c, *_ in fallback} == {1, 2, 3, 4}


def test_the_loop_variant_explores_and_steers_away_from_dislikes():
    candidates = [candidate(i, [np.cos(i / 3), np.sin(i / 3), 0.1 * i]) for i in range(1, 21)]
    candidates = [Candidate(**{**vars(c), "similarity": 1 - c.podcast_id / 40}) for c in candidates]
    weights = ranking.BlendWeights(0.0, 0.0, 0.0, 1.0, 0.0, 1.0)
    loop = VARIANTS["loop"]
    disliked = np.vstack([candidates[0].embedding])
    strategies = set()
    for seed in range(30):
        chosen = pages.choose(candidates, set(), 10, loop, weights, disliked, random.Random(seed))
        assert candidates[0] not in [c.candidate for c in chosen]  # close to the dislike: not shown
        strategies |= {c.strategy for c in chosen}
    assert strategies == {"similar", "explore"}


def test_items_carry_evidence_and_only_reasons_that_still_hold():
    liked = Engagement(7, 1.0, "Liked Episode", None)
    written = candidate(2, [0, 1, 0], collaborative=1.0, because_of=7, written_reason="Because…")
    stale = candidate(3, [0, 0, 1], similarity=0.4, written_reason="Old", written_for="co_engagement:9")
    chosen = [pages.Chosen(written, "collaborative", 1.0), pages.Chosen(stale, "similar", 0.5)]
    items = pages.explain(chosen, [liked], set())
    assert items[0].evidence == {"kind": "co_engagement", "podcast_id": 7, "title": "Liked Episode"}
    assert items[0].reason is None  # written for no evidence key: not this one
    items = pages.explain(
        [pages.Chosen(Candidate(**{**vars(written), "written_for": "co_engagement:7"}), "collaborative", 1)],
        [liked],
        set(),
    )
    assert items[0].reason == "Because…"
    assert pages.Item.from_stored({**items[0].stored(), "title": "Now", "summary": None, "category": None})


def test_trending_topics_are_shared_by_several_episodes_the_most_engaged_first():
    vectors = np.array([[1, 0, 0], [0, 1, 0], [0.99, 0.1, 0], [0, 0.98, 0.1], [0, 0, 1]], dtype=np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    engagement = np.array([1.0, 3.0, 1.0, 2.0, 9.0])
    assert topics.trending(vectors, engagement, max_topics=5) == [[1, 3], [0, 2]]  # [4] is one episode
    assert topics.trending(vectors, engagement, max_topics=1) == [[1, 3]]
    assert topics.trending(vectors[:1], engagement[:1], max_topics=5) == []


@pytest.mark.parametrize(
    ("events", "net"),
    [
        ([("listen", 1.0), ("rate", 1)], -1.0),  # a listen, then 1 star: against, not +0.6 - 1
        ([("listen", 1.0), ("rate", 2)], -0.5),
        ([("like", None), ("rate", 3)], 0.0),  # 3 stars: neutral, whatever came before
        ([("dislike", None), ("like", None)], 1.0),  # the latest judgement decides
        ([("rate", 5), ("skip", None), ("listen", 0.5)], 1.0),  # doings around a judgement do not
        ([("click", None), ("listen", 0.5), ("skip", None)], 0.2 + 0.3 - 0.3),  # no judgement: the sum
    ],
)
def test_a_listeners_events_on_an_episode_net_to_their_latest_judgement(events, net):
    weights = [(event_weight(event, value), event in JUDGEMENTS) for event, value in events]
    assert net_engagement(weights) == pytest.approx(net)


def test_events_net_in_the_order_they_happened_and_fade_from_the_latest():
    now = datetime(2026, 6, 1, tzinfo=UTC)
    like, dislike = (
        PairEvent(1.0, True, now - timedelta(days=30)),
        PairEvent(-1.0, True, now - timedelta(days=60)),
    )
    assert faded_engagement([like, dislike], now, 30) == pytest.approx(0.5)  # stored last, happened first
    assert faded_engagement([dislike], now, 30) == pytest.approx(-0.25)
    assert faded_engagement([PairEvent(1.0, True, now + timedelta(minutes=3))], now, 30) == 1.0  # not > 1
    assert faded_engagement([], now, 30) == 0.0
