"""Re-ranking, profiles and variants: plain functions, no database."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from recommender.model import profiles, ranker, ranking, topics, variants


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


PLAIN = variants.Variant(
    "plain", use_feedback=True, use_behaviour=True, mmr_lambda=1.0, exploration=0.0, negative_penalty=0.0
)


def test_mmr_does_not_fill_a_page_with_near_duplicates():
    query = unit(1, 0, 0)
    candidates = np.vstack([unit(1, 0.1, 0), unit(1, 0.11, 0), unit(1, 0, 0.5)])  # 0 and 1 are twins
    plain = [row for row, _ in ranking.rerank(candidates @ query, candidates, 2, PLAIN)]
    diverse = variants.Variant("mmr", True, True, mmr_lambda=0.3, exploration=0.0, negative_penalty=0.0)
    assert plain == [0, 1]
    assert [row for row, _ in ranking.rerank(candidates @ query, candidates, 2, diverse)] == [0, 2]


def test_mmr_trades_relevance_for_diversity_the_same_way_at_every_scale():
    # One strong co-engaged pick; then a weaker one in the same topic against a far, weaker one.
    candidates = np.vstack([unit(1, 0, 0), unit(0.7, 0.71, 0), unit(0.1, 0, 1)])
    relevance = np.array([1.0, 0.04, 0.022])
    loop = variants.Variant("loop-like", True, True, mmr_lambda=0.9, exploration=0.0, negative_penalty=0.0)
    for scale in (1.0, 0.01, 100.0):
        assert [row for row, _ in ranking.rerank(relevance * scale, candidates, 3, loop)] == [0, 1, 2]


def test_closeness_to_a_dislike_lowers_an_episode():
    query = unit(1, 1.05)
    candidates = np.vstack([unit(1, 0.9), unit(0.9, 1)])
    assert ranking.rerank(candidates @ query, candidates, 1, PLAIN)[0][0] == 1
    penalized = variants.Variant("neg", True, True, mmr_lambda=1.0, exploration=0.0, negative_penalty=0.5)
    assert (
        ranking.rerank(candidates @ query, candidates, 1, penalized, negatives=np.vstack([unit(0, 1)]))[0][0]
        == 0
    )


def test_exploration_takes_its_share_of_slots_from_the_better_half():
    rng = random.Random(3)
    candidates = np.vstack([unit(1, i / 40) for i in range(40)])
    explorer = variants.Variant("x", True, True, mmr_lambda=1.0, exploration=0.2, negative_penalty=0.0)
    strategies, explored_rows = Counter(), set()
    for _ in range(200):
        for row, strategy in ranking.rerank(candidates @ unit(1, 0), candidates, 10, explorer, rng=rng):
            strategies[strategy] += 1
            if strategy == "explore":
                explored_rows.add(row)
    assert strategies["explore"] / (200 * 10) == pytest.approx(0.2, abs=0.02)
    assert explored_rows and max(explored_rows) < 10 + 15  # never the worst half of the rest


def weighted(**weights: float) -> ranking.BlendWeights:
    """Blend weights: the ones given, the others 0 (negatives counting as they weigh)."""
    return ranking.BlendWeights(
        **(
            {
                "collaborative": 0.0,
                "factors": 0.0,
                "ease": 0.0,
                "content": 0.0,
                "popularity": 0.0,
                "negatives": 1.0,
            }
            | weights
        )
    )


def blended(weights: ranking.BlendWeights, **signals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`ranker.blend` of candidates with these signals (the others 0)."""
    count = len(next(iter(signals.values())))
    names = ranker.Signals.__dataclass_fields__
    given = {name: np.zeros(count) for name in names} | {"age_days": np.full(count, np.nan)} | signals
    return ranker.blend(ranker.features(ranker.Signals(**given)), weights)


def test_blend_lets_co_engagement_lift_an_episode_whose_text_is_far():
    scores = {
        "co_engagement": np.array([0.0, 6.0, 3.0]),
        "similarity": np.array([0.9, 0.1, 0.5]),
        "popularity": np.array([0.9, 0.3, 0.0]),
    }
    relevance, behaviour_led = blended(weighted(collaborative=1.0, content=0.1, popularity=0.05), **scores)
    assert list(np.argsort(-relevance)) == [1, 2, 0]
    assert list(behaviour_led) == [False, True, True]
    relevance = blended(weighted(content=1.0), **scores)[0]
    assert list(np.argsort(-relevance)) == [0, 2, 1]


def test_blend_adds_factor_affinity_and_ease_scaled_by_the_best_candidates():
    co_engagement = np.array([4.0, 0.0, 2.0])
    affinity = np.array([0.0, 0.9, 0.6])  # on its own scale: only its ratio to the best counts
    relevance, behaviour_led = blended(
        weighted(collaborative=1.0, factors=1.0), co_engagement=co_engagement, affinity=affinity
    )
    assert np.allclose(relevance, [1.0, 1.0, 0.5 + 0.6 / 0.9], atol=1e-6) and behaviour_led.all()
    negative = blended(weighted(collaborative=1.0, factors=1.0), affinity=np.array([-0.3, -0.1]))[0]
    assert np.allclose(negative, 0.0)  # no candidate the listener's factors like: no factor term
    ease = blended(weighted(ease=2.0), ease=np.array([0.02, 0.01, 0.0]))[0]
    assert np.allclose(ease, [2.0, 1.0, 0.0], atol=1e-6)


def test_negative_engagement_counts_as_much_as_the_blend_says():
    """Candidate 0 is co-engaged with an episode the listener liked (3) and one they disliked (-2):
    as the events weigh it nets 1, without the dislike 3, and the other candidates keep their score."""
    scores = {"co_engagement": np.array([1.0, 2.0]), "co_engagement_negative": np.array([-2.0, 0.0])}
    as_weighed = blended(weighted(collaborative=1.0), **scores)[0]
    assert np.allclose(as_weighed, [0.5, 1.0], atol=1e-6)
    ignored = blended(weighted(collaborative=1.0, negatives=0.0), **scores)[0]
    assert np.allclose(ignored, [1.5, 1.0], atol=1e-6)  # the dislike no longer pulls it down


def test_blend_without_any_behaviour_ranks_by_content_and_popularity():
    weights = weighted(collaborative=1.0, factors=1.0, content=0.1, popularity=0.05)
    relevance, behaviour_led = blended(weights, similarity=np.array([0.5, 0.6]))
    assert np.allclose(relevance, [0.05, 0.06], atol=1e-6) and not behaviour_led.any()


def test_text_that_the_blend_gives_no_weight_does_not_re_rank():
    loop = variants.VARIANTS["loop"]
    assert ranking.with_text_terms(loop, weighted(ease=0.1, content=0.1)) == loop
    textless = ranking.with_text_terms(loop, weighted(ease=0.1))
    assert (textless.mmr_lambda, textless.negative_penalty) == (1.0, 0.0)
    assert textless.exploration == loop.exploration and textless.use_ranker


def test_variant_assignment_is_deterministic_and_follows_the_split():
    split = variants.parse_split("loop:90,history_only:10")
    names = Counter(variants.assign_variant(f"user-{i}", split, "v1").name for i in range(4000))
    assert names["history_only"] / 4000 == pytest.approx(0.1, abs=0.02)
    assert all(variants.assign_variant("alice", split, "v1") is variants.assign_variant("alice", split, "v1")
               for _ in range(3))  # fmt: skip
    with pytest.raises(ValueError, match="unknown variant"):
        variants.parse_split("loop:50,bogus:50")


def test_profile_moves_toward_likes_and_away_from_dislikes():
    history = unit(1, 0, 0)
    liked, disliked = unit(0, 1, 0), unit(0, 0, 1)
    feedback = 1.0 * liked - 1.0 * disliked
    profile = profiles.learned_profile(history, None, feedback, feedback_weight=0.5)
    assert float(profile @ liked) > 0.3
    assert float(profile @ disliked) < 0
    assert np.allclose(profiles.learned_profile(history, None, None, 0.5), history)


def test_feedback_halves_every_half_life():
    vector = np.array([4.0, 0.0])
    assert np.allclose(profiles.decayed(vector, 30 * 86400, half_life_days=30), [2.0, 0.0])
    assert np.allclose(profiles.decayed(vector, None, half_life_days=30), vector)


def test_combine_weighs_each_part_equally():
    assert np.allclose(profiles.combine(np.array([3.0, 0]), np.array([0, 0.5])), unit(1, 1))
    assert profiles.combine(None, None) is None


def test_cluster_groups_similar_vectors():
    vectors = np.vstack([unit(1, 0), unit(0, 1), unit(1, 0.1), unit(0.1, 1), unit(1, 0.05)])
    assert topics.cluster(vectors, threshold=0.9) == [[0, 2, 4], [1, 3]]


def test_the_exploration_share_is_a_setting_of_the_arms_that_explore(monkeypatch):
    from config import get_settings
    from recommender.service.pages import variant_of

    monkeypatch.setenv("AB_SPLIT", "loop:50,history_only:50")
    listeners = [f"listener-{n}" for n in range(40)]
    for share in ("0", "0.3"):
        monkeypatch.setenv("EXPLORATION_SHARE", share)
        get_settings.cache_clear()
        arms = {variant_of(listener) for listener in listeners}
        assert {(v.name, v.exploration) for v in arms} == {("loop", float(share)), ("history_only", 0.0)}
    monkeypatch.setenv("EXPLORATION_SHARE", "1.5")  # more than the whole page
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="exploration_share"):
        get_settings()
    get_settings.cache_clear()
