"""Two instances on one database, as Azure scales a Function App out (issue 32): two
`local_runner.py` processes, each with its own workers, sharing one Postgres. The timers run in one
process of the two, no episode is summarized twice however it arrives (either instance's
`add_podcast`, plain SQL), and a page one instance prepared is served by the other."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import Api, openai_env, run_api, wait_for
from tests.fake_openai_server import FakeOpenAIServer

pytestmark = pytest.mark.service  # over HTTP, against local_runner.py in subprocesses

HOLDER = re.compile(r"\[(\d+)\] local_runner: background worker: this process")
TEXT = "Tide pools, the creatures in them and the people who count them at dawn."


@pytest.fixture(scope="module")
def instances(create_database, fake: FakeOpenAIServer, tmp_path_factory) -> Iterator[tuple[Api, Api]]:
    """Two runners of two processes each on one database; the second starts once the first
    migrated it and took the timers."""
    dsn, logs = create_database("instances"), tmp_path_factory.mktemp("logs")
    env = openai_env(fake)
    with run_api(dsn, env, logs / "first.log", "--workers", "2") as first:
        assert wait_for(lambda: HOLDER.search(first.log())), first.log()
        with run_api(dsn, env, logs / "second.log", "--workers", "2") as second:
            yield first, second


def test_the_timers_run_in_one_process_of_the_two_instances(instances: tuple[Api, Api]):
    first, second = instances
    assert len(HOLDER.findall(first.log())) == 1, first.log()
    assert not HOLDER.findall(second.log()), second.log()


def test_no_episode_is_summarized_twice_whichever_instance_or_path_adds_it(
    instances: tuple[Api, Api], fresh_fake: FakeOpenAIServer
):
    """Inline enrichment in both instances' `add_podcast` and the timer woken by each insert
    race for the same rows; a slow AI service widens the race."""
    fresh_fake.chat_delay_seconds = 0.3
    first, second = instances
    titles = [f"Tide pools {n}" for n in range(24)]

    def add(n: int) -> int:
        body = {"title": titles[n], "transcript": f"{TEXT} Part {n}."}
        return (first, second)[n % 2].post("/api/add_podcast", body).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(add, range(len(titles)))) == {201}
    by_sql = [f"Tide pools by SQL {n}" for n in range(8)]
    first.query(
        "INSERT INTO podcasts (title, transcript) SELECT t, %s FROM unnest(%s::text[]) t", (TEXT, by_sql)
    )
    everything = titles + by_sql
    ready = "SELECT count(*) FROM podcasts WHERE title = ANY(%s) AND status = 'ready'"
    assert wait_for(lambda: first.query(ready, (everything,))[0][0] == len(everything), timeout=60)
    assert {title: fresh_fake.summarized.get(title) for title in everything} == dict.fromkeys(everything, 1)


def test_a_page_one_instance_prepared_is_served_by_the_other(instances: tuple[Api, Api]):
    first, second = instances
    for n in range(6):
        body = {"title": f"Rock pools {n}", "transcript": f"{TEXT} Rock pool {n}."}
        assert first.post("/api/add_podcast", body).status_code == 201
    history = {"user_id": "two-instances", "listening_history": "Rock pools and tide pools at dawn"}
    assert first.post("/api/update_user_history", history).status_code == 200  # the first prepares
    stored = "SELECT items FROM prepared_pages WHERE user_id = 'two-instances'"
    assert wait_for(lambda: first.query(stored)), first.log()
    [(items,)] = first.query(stored)
    served = second.get("/api/recommend_podcasts", params={"user_id": "two-instances", "limit": 5}).json()
    assert served["prepared"], served
    assert [item["podcast_id"] for item in served["recommendations"]] == [i["podcast_id"] for i in items]
    page_item = served["recommendations"][0]
    event = {"user_id": "two-instances", "podcast_id": page_item["podcast_id"], "event": "like"}
    answered = first.post("/api/feedback", {**event, "suggestion_id": page_item["suggestion_id"]})
    assert answered.status_code == 201, answered.text  # the other instance's suggestion is known
