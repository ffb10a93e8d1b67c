"""Events keep their own time (`occurred_at`): over HTTP and the command line, on the real database.

An imported history weighs and counts as of when it happened: a year-old like has faded as the
decay says, per-day figures place events on their own days, the latest judgement is the latest to
have happened; a time in the future, or before the suggestion an event answers, is refused whole.
"""

from __future__ import annotations

import csv
import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

import config
from recommender.model.ranker import BOOTSTRAP_LISTENER_SHARE, unit_hash
from tests.conftest import Api, user_in, wait_for_model
from tests.test_bulk_feedback import cli, event, feedback_state, import_events, new_user, page, podcasts, rows
from tests.test_collaborative import add_episode

pytestmark = pytest.mark.service  # over HTTP, against local_runner.py in a subprocess

HALF_LIFE_DAYS = config.Settings.model_fields["feedback_half_life_days"].default
POPULARITY_HALF_LIFE_DAYS = config.Settings.model_fields["popularity_half_life_days"].default


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def post(api: Api, body: dict | list) -> tuple[int, dict]:
    response = api.post("/api/feedback", body)
    return response.status_code, response.json()


def test_an_imported_like_from_a_year_ago_weighs_what_the_decay_says(local_api: Api):
    fresh, imported = new_user(local_api), new_user(local_api)
    episode = podcasts(local_api)[0]
    year_ago = days_ago(365).replace(microsecond=0)
    assert post(local_api, event(fresh, episode, "like"))[0] == 201
    status, stored = post(local_api, event(imported, episode, "like", occurred_at=year_ago.isoformat()))
    assert status == 201, stored
    assert datetime.fromisoformat(stored["occurred_at"]) == year_ago
    assert datetime.fromisoformat(stored["created_at"]) > year_ago + timedelta(days=364)  # stored now
    now_vector, old_vector = feedback_state(local_api, fresh)[0], feedback_state(local_api, imported)[0]
    ratio = np.linalg.norm(old_vector) / np.linalg.norm(now_vector)
    assert ratio == pytest.approx(0.5 ** (365 / HALF_LIFE_DAYS), rel=1e-3)  # ~0.0002, not 1
    assert np.allclose(old_vector / np.linalg.norm(old_vector), now_vector / np.linalg.norm(now_vector))


def test_the_latest_judgement_is_the_one_that_happened_last(local_api: Api):
    user_id = new_user(local_api)
    episode = podcasts(local_api)[1]
    assert post(local_api, event(user_id, episode, "like"))[0] == 201
    liked = feedback_state(local_api, user_id)[0]
    old_dislike = event(user_id, episode, "dislike", occurred_at=days_ago(100).isoformat())
    assert post(local_api, old_dislike)[0] == 201  # imported after, but it happened before the like
    assert np.allclose(feedback_state(local_api, user_id)[0], liked, atol=1e-6)
    assert post(local_api, event(user_id, episode, "dislike"))[0] == 201  # now it is the latest
    assert np.dot(feedback_state(local_api, user_id)[0], liked) < 0


def test_the_popularity_prior_counts_imported_engagement_as_of_when_it_happened(local_api: Api):
    long_ago, lately = (add_episode(local_api, f"Episode {uuid.uuid4().hex[:6]}", "x", "misc") for _ in "ab")
    # Listeners whose engagement the models all see (`model.ranker.held_out` hides some of a few).
    listeners: list[str] = []
    while len(listeners) < 2:
        user_id = user_in("loop")
        listeners += [user_id] if unit_hash(user_id) >= BOOTSTRAP_LISTENER_SHARE else []
    for user_id in listeners:
        body = {
            "user_id": user_id,
            "listened_podcast_ids": [long_ago],
            "occurred_at": days_ago(70).isoformat(),
        }
        assert local_api.post("/api/update_user_history", body).status_code == 200
        assert post(local_api, event(user_id, lately, "like"))[0] == 201
    wait_for_model(local_api)
    popularity = dict(
        local_api.query(
            "SELECT podcast_id, popularity FROM podcast_engagement WHERE podcast_id IN (%s, %s)",
            (long_ago, lately),
        )
    )
    assert popularity[long_ago] / popularity[lately] == pytest.approx(
        0.5 ** (70 / POPULARITY_HALF_LIFE_DAYS), rel=0.01
    )


def test_per_day_figures_place_imported_events_on_their_own_days(local_api: Api):
    user_id = new_user(local_api)
    ids = podcasts(local_api)
    first_day, second_day = days_ago(40).replace(hour=9), days_ago(38).replace(hour=23)
    events = [
        event(user_id, ids[2], "like", occurred_at=first_day.isoformat()),
        event(user_id, ids[3], "skip", occurred_at=first_day.isoformat()),
        event(user_id, ids[4], "complete", occurred_at=second_day.date().isoformat()),  # a date: its start
    ]
    assert all(result["created"] for result in post(local_api, events)[1]["results"])
    since = days_ago(41).date().isoformat()
    response = local_api.get("/api/dashboard", params={"since": since})
    assert response.status_code == 200, response.text
    activity = {day["day"]: (day["events"], day["positive_events"]) for day in response.json()["activity"]}
    assert activity[first_day.date().isoformat()] == (2, 1)
    assert activity[second_day.date().isoformat()] == (1, 1)
    assert activity[days_ago(39).date().isoformat()] == (0, 0)


def test_an_event_in_the_future_or_before_its_suggestion_is_refused_with_nothing_written(local_api: Api):
    user_id = new_user(local_api)
    [item, *_] = page(local_api, user_id, 3)
    ids = {"podcast_id": item["podcast_id"], "suggestion_id": item["suggestion_id"]}
    count = feedback_state(local_api, user_id)[1]

    status, error = post(local_api, {"user_id": user_id, **ids, "event": "like", "occurred_at": "2999-01-01"})
    assert status == 400 and "occurred_at" in error["error"]["message"], error
    assert "future" in error["error"]["message"]
    status, error = post(
        local_api, {"user_id": user_id, **ids, "event": "like", "occurred_at": days_ago(1).isoformat()}
    )
    assert (status, error["error"]["code"]) == (400, "occurred_before_suggestion"), error
    assert f"suggestion {item['suggestion_id']}" in error["error"]["message"]
    in_bulk = post(
        local_api, [{"user_id": user_id, **ids, "event": "like", "occurred_at": days_ago(1).isoformat()}]
    )
    assert in_bulk[1]["results"][0]["error"]["code"] == "occurred_before_suggestion"
    assert rows(local_api, user_id) == [] and feedback_state(local_api, user_id)[1] == count

    status, stored = post(local_api, {"user_id": user_id, **ids, "event": "like"})  # now: after it
    assert status == 201 and stored["suggestion_id"] == item["suggestion_id"]


def test_stated_listens_keep_the_time_they_are_given(local_api: Api):
    user_id = user_in("loop")
    ids = podcasts(local_api)
    when = "2025-03-04T05:06:07+00:00"
    body = {"user_id": user_id, "listened_podcast_ids": ids[:2], "occurred_at": when}
    assert local_api.post("/api/update_user_history", body).status_code == 200
    body = {"user_id": user_id, "listened_podcast_ids": [ids[2]]}
    assert local_api.post("/api/update_user_history", body).status_code == 200
    stored = local_api.query(
        "SELECT podcast_id, occurred_at, created_at FROM user_listens WHERE user_id = %s ORDER BY podcast_id",
        (user_id,),
    )
    assert [(p, at.isoformat()) for p, at, _ in stored[:2]] == [(ids[0], when), (ids[1], when)]
    assert stored[2][1] > datetime.fromisoformat(when) + timedelta(days=300)  # absent: now
    assert all(created_at > datetime.fromisoformat(when) for _, _, created_at in stored)  # stored now
    future = {"user_id": user_id, "listened_podcast_ids": [ids[3]], "occurred_at": "2999-01-01"}
    assert local_api.post("/api/update_user_history", future).status_code == 400
    assert len(local_api.query("SELECT 1 FROM user_listens WHERE user_id = %s", (user_id,))) == 3


def export_events(api: Api, path) -> str:
    done = cli(api, "export-events", "--output", str(path))
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_a_csv_with_unix_timestamps_round_trips_through_the_export(local_api: Api, tmp_path):
    user_id = new_user(local_api)
    ids = podcasts(local_api)
    stamps = [1_700_000_000, 1_710_000_000.5]
    source = tmp_path / "ratings.csv"
    tag = uuid.uuid4().hex[:6]
    source.write_text(
        "user_id,podcast_id,event,value,event_id,timestamp\n"
        f"{user_id},{ids[5]},rate,4,{tag}-1,{stamps[0]}\n"
        f"{user_id},{ids[6]},like,,{tag}-2,{stamps[1]}\n"
        f"{user_id},{ids[7]},like,,{tag}-3,yesterday\n"
    )
    done = import_events(local_api, source)
    assert "imported 2 new events, 0 already stored, 1 failed" in done.stdout, done.stdout + done.stderr
    assert "line 4: invalid_request: timestamp: must be Unix seconds" in done.stdout

    exported = tmp_path / "events.csv"
    assert "exported" in export_events(local_api, exported)
    with exported.open(newline="") as handle:
        mine = [row for row in csv.DictReader(handle) if row["user_id"] == user_id]
    assert [(r["event_id"], r["event"], r["value"]) for r in mine] == [
        (f"{tag}-1", "rate", "4.0"),
        (f"{tag}-2", "like", ""),
    ]
    assert [datetime.fromisoformat(r["occurred_at"]).timestamp() for r in mine] == stamps

    mine_again = tmp_path / "mine.csv"  # what the export wrote of this listener, as it wrote it
    with exported.open(newline="") as handle:
        lines = handle.read().splitlines()
    mine_again.write_text("\n".join([lines[0], *(line for line in lines[1:] if line.startswith(user_id))]))
    again = import_events(local_api, mine_again)  # the export is what import-events reads
    assert again.returncode == 0, again.stdout + again.stderr
    assert "imported 0 new events, 2 already stored, 0 failed" in again.stdout
    as_jsonl = [json.loads(line) for line in jsonl_export(local_api, tmp_path)]
    assert [e["event_id"] for e in as_jsonl if e["user_id"] == user_id] == [f"{tag}-1", f"{tag}-2"]


def jsonl_export(api: Api, tmp_path) -> list[str]:
    path = tmp_path / "events.jsonl"
    export_events(api, path)
    return path.read_text().splitlines()
