"""The dashboard: the A/B interval's math, its daily series on the real database, trending topics
that group related episodes under a label naming what they share, and its routes over HTTP."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg2
import pytest

import db_utils
from recommender.ai.local_provider import LocalProvider
from recommender.model.ab_test import difference_interval
from recommender.service import dashboard
from tests.conftest import Api
from tests.fake_openai_server import FakeOpenAIServer

# --- the A/B read-out's interval ----------------------------------------------------------


def test_the_difference_comes_with_agresti_caffos_interval():
    interval = difference_interval((50, 100), (40, 100))
    # (51/102 - 41/102) ± 1.959964 * sqrt(51/102 * 51/102 / 102 + 41/102 * 61/102 / 102)
    assert interval == {"difference": 0.1, "low": -0.0379, "high": 0.2339, "significant": False}
    assert difference_interval((90, 100), (40, 100))["significant"]
    assert difference_interval((5, 10), (0, 0)) is None  # the holdout showed nothing yet


def test_rates_of_zero_still_get_an_interval_of_some_width():
    interval = difference_interval((0, 5), (0, 5))
    assert interval["difference"] == 0
    assert interval["low"] < -0.3 and interval["high"] > 0.3 and not interval["significant"]


def test_the_interval_covers_the_true_difference_95_times_in_100():
    rng = np.random.default_rng(7)
    rate_t, rate_c, shown = 0.2, 0.1, 60
    draws = zip(rng.binomial(shown, rate_t, 4000), rng.binomial(shown, rate_c, 4000), strict=True)
    covered = 0
    for engaged_t, engaged_c in draws:
        interval = difference_interval((int(engaged_t), shown), (int(engaged_c), shown))
        covered += interval["low"] <= rate_t - rate_c <= interval["high"]
    assert 0.93 <= covered / 4000 <= 0.97


# --- the series, shaped from the real database ---------------------------------------------


@pytest.fixture(scope="module")
def dsn(create_database) -> str:
    dsn = create_database("dashboard_tests")
    with psycopg2.connect(dsn) as conn:
        db_utils.migrate(conn, 384, "test-model")
    return dsn


def suggest(cur, user_id: str, podcast_id: int, variant: str, rank: int, at: datetime) -> int:
    cur.execute(
        "INSERT INTO suggested_podcasts (user_id, podcast_id, variant, rank, similarity, reason,"
        " suggested_at) VALUES (%s, %s, %s, %s, 0.5, 'a reason', %s) RETURNING id",
        (user_id, podcast_id, variant, rank, at),
    )
    return cur.fetchone()[0]


def event(cur, user_id: str, podcast_id: int, suggestion_id: int, kind: str, weight: float, at: datetime):
    cur.execute(
        "INSERT INTO feedback_events (user_id, podcast_id, suggestion_id, event, weight, occurred_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (user_id, podcast_id, suggestion_id, kind, weight, at),
    )


def test_series_have_every_day_and_each_variants_rate(dsn: str):
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    two_days_ago = today - timedelta(days=2)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO users (id, name) VALUES ('ann', 'Ann'), ('bob', NULL)")
        cur.execute("INSERT INTO podcasts (title, transcript) VALUES ('One', 'x'), ('Two', 'y') RETURNING id")
        one, two = (row[0] for row in cur.fetchall())
        liked = suggest(cur, "ann", one, "loop", 1, two_days_ago)
        skipped = suggest(cur, "ann", two, "loop", 2, two_days_ago)
        suggest(cur, "bob", one, "history_only", 1, today)
        suggest(cur, "bob", two, "blend", 1, today)
        event(cur, "ann", one, liked, "like", 1.0, two_days_ago)
        event(cur, "ann", one, liked, "complete", 1.0, today)
        event(cur, "ann", two, skipped, "skip", -0.3, today)
        suggest(cur, "ann", one, "loop", 1, today - timedelta(days=30))  # before `since`: not counted
        figures = dashboard.figures(conn, today - timedelta(days=3), today.date())
        conn.rollback()

    days = [(today - timedelta(days=n)).date().isoformat() for n in (3, 2, 1, 0)]
    assert figures["days"] == days
    assert figures["totals"] == {"suggestions": 4, "engaged": 1, "events": 3}
    blend, holdout, loop = figures["variants"]  # by name
    assert loop | {"daily": None} == {
        "variant": "loop", "suggestions": 2, "engaged": 1, "engagement_rate": 0.5, "daily": None,
    }  # fmt: skip
    assert [d["engagement_rate"] for d in loop["daily"]] == [None, 0.5, None, None]
    assert [d["suggestions"] for d in holdout["daily"]] == [0, 0, 0, 1]
    assert holdout["engagement_rate"] == 0
    assert figures["ab_test"] == {
        "treatment": "loop", "control": "history_only", **difference_interval((1, 2), (0, 1)),
    }  # fmt: skip
    assert figures["ranker_test"] == {
        "treatment": "loop", "control": "blend", **difference_interval((1, 2), (0, 1)),
    }  # fmt: skip
    assert blend["suggestions"] == 1
    assert figures["ranker"] == {"ranks": "blend", "version": None}  # none trained yet
    assert figures["by_rank"] == [
        {"rank": 1, "suggestions": 3, "engaged": 1, "engagement_rate": 0.3333},
        {"rank": 2, "suggestions": 1, "engaged": 0, "engagement_rate": 0.0},
    ]
    assert [(a["suggestions"], a["events"], a["positive_events"]) for a in figures["activity"]] == [
        (0, 0, 0), (2, 1, 1), (0, 0, 0), (2, 2, 1),
    ]  # fmt: skip
    assert {listener["user_id"] for listener in figures["listeners"]} == {"ann", "bob"}


def test_without_the_holdout_there_is_no_ab_read_out(dsn: str):
    with psycopg2.connect(dsn) as conn:
        figures = dashboard.figures(conn, datetime.now(UTC), datetime.now(UTC).date())
    assert figures["ab_test"] is None and figures["ranker_test"] is None
    assert figures["variants"] == [] and figures["by_rank"] == []


# --- trending topics ------------------------------------------------------------------------


def test_the_offline_label_names_what_a_group_shares():
    provider = LocalProvider("sentence-transformers/all-MiniLM-L6-v2")
    crime = [
        "The Riverbend Cold Case: Solved by a Family Tree (true-crime)",
        "Twenty Years for Nothing: Inside a Wrongful Conviction (true-crime)",
        "A Poisoning in Maple Hollow: Small-Town Secrets and Arsenic (true-crime)",
    ]
    bread = ["Sourdough Bread at Home", "Rye Bread, Slowly", "Why Bread Rises"]
    assert provider.label_topics([crime, bread, ["Volcanoes", "Tax law"]]) == ["true-crime", "bread", "mixed"]


def like(api: Api, user_id: str, podcast_id: int) -> None:
    body = {"user_id": user_id, "podcast_id": podcast_id, "event": "like"}
    assert api.post("/api/feedback", body).status_code == 201


@pytest.mark.service
def test_related_episodes_trend_as_one_topic_labelled_by_their_subject(local_api: Api):
    since = datetime.now(UTC).isoformat()
    ids = local_api.sample_ids
    crime = [ids["sample-true-crime-1"], ids["sample-true-crime-3"], ids["sample-true-crime-5"]]
    others = [ids["sample-history-1"], ids["sample-science-1"], ids["sample-health-1"]]
    listener = f"trend-{uuid.uuid4().hex[:8]}"
    history = {"user_id": listener, "listening_history": "a bit of everything"}
    assert local_api.post("/api/update_user_history", history).status_code == 200
    for podcast_id in crime + others:
        like(local_api, listener, podcast_id)
    response = local_api.get("/api/dashboard", params={"since": since})
    assert response.status_code == 200, response.text
    [topic] = response.json()["trending_topics"]  # the others are one episode each: no topic
    assert {p["podcast_id"] for p in topic["podcasts"]} == set(crime)
    assert (topic["label"], topic["episodes"], topic["engagement"]) == ("true-crime", 3, 3.0)


@pytest.mark.service
def test_with_an_llm_the_topic_label_is_the_llms(openai_api: Api, ai: FakeOpenAIServer):
    since = datetime.now(UTC).isoformat()
    user_id = f"user-{uuid.uuid4().hex[:8]}"
    history = {"user_id": user_id, "listening_history": "lava"}
    assert openai_api.post("/api/update_user_history", history).status_code == 200
    titles = [f"Volcano diary {uuid.uuid4().hex[:6]}" for _ in range(3)]
    for title in titles:
        body = {"title": title, "transcript": "lava magma eruption crater", "category": "science"}
        like(openai_api, user_id, openai_api.post("/api/add_podcast", body).json()["id"])
    ai.chat_reply = json.dumps({"labels": ["Volcanic eruptions"]})
    [topic] = openai_api.get("/api/dashboard", params={"since": since}).json()["trending_topics"]
    assert topic["label"] == "Volcanic eruptions"
    [labelling] = [r for r in ai.requests if "topic label" in r.get("messages", [{}])[0].get("content", "")]
    sent = json.loads(labelling["messages"][1]["content"])["groups"]
    assert sorted(sent[0]) == sorted(f"{title} (science)" for title in titles)
    ai.reset()  # the same cluster again: its label is kept, no second call
    [again] = openai_api.get("/api/dashboard", params={"since": since}).json()["trending_topics"]
    assert again["label"] == "Volcanic eruptions" and ai.chat_requests == 0
    assert openai_api.get("/api/analytics", params={"since": since}).json()["llm_calls"]["topic_labels"] >= 1


# --- the routes ------------------------------------------------------------------------------


@pytest.mark.service
def test_the_console_is_served_with_its_own_files_only(local_api: Api):
    page = local_api.get("/api/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert local_api.get("/api/ui/app.js").headers["content-type"].startswith("text/javascript")
    assert local_api.get("/api/ui/style.css").headers["content-type"].startswith("text/css")
    for name in ("index.html", "..%2Ffunction_app.py", "..%2F..%2Fetc%2Fpasswd", "APP.JS"):
        response = local_api.get(f"/api/ui/{name}")
        assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found"), name


@pytest.mark.service
def test_an_episode_can_be_watched_until_it_is_ready(local_api: Api):
    podcast_id = local_api.sample_ids["sample-cooking-1"]
    episode = local_api.get(f"/api/podcasts/{podcast_id}/status").json()
    assert (episode["id"], episode["status"]) == (podcast_id, "ready")
    assert "transcript" not in episode
    missing = local_api.get("/api/podcasts/999999999/status")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "podcast_not_found")
    assert local_api.get("/api/podcasts/abc/status").status_code == 400


@pytest.mark.service
def test_the_dashboard_refuses_a_since_too_long_ago(local_api: Api):
    response = local_api.get("/api/dashboard", params={"since": "2001-01-01T00:00:00Z"})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_request")
