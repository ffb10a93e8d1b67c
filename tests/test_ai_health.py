"""AI health per capability from a moving window of recent calls (issue 21, item 5): steady under
a 50 % failure rate, quick to see an outage, sure of a recovery, and the worker's requeue of
given-up episodes once chat and embeddings answer again."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator

import openai
import pytest

from recommender.ai import status
from recommender.ai.interface import AIProviderError
from recommender.ai.openai_provider import OpenAIProvider
from tests.conftest import FAKE_API_KEY, Api, wait_for
from tests.fake_openai_server import FakeOpenAIServer

SETTINGS = {"AI_MAX_RETRIES": "0", "AI_TIMEOUT_SECONDS": "5", "AI_PROBE_SECONDS": "1"}


@pytest.fixture
def ai(fresh_fake: FakeOpenAIServer) -> FakeOpenAIServer:
    return fresh_fake


@pytest.fixture
def fresh_status() -> Iterator[None]:
    status.reset()
    yield
    status.reset()


def statuses(outcomes: list[bool], capability: status.Capability | None = None) -> list[str]:
    """The status after each outcome, recorded in order."""
    capability = capability or status.Capability()
    seen = []
    for ok in outcomes:
        capability.record(ok, None if ok else "chat request failed: InternalServerError")
        seen.append(capability.status)
    return seen


def test_alternating_failures_at_50_percent_do_not_flap():
    assert statuses([True, False] * 100) == ["ok"] + ["failing"] * 199
    healthy = status.Capability()
    statuses([True] * 40, healthy)
    after = statuses([False, True] * 100, healthy)  # half the window failing: failing, and it stays
    assert after.index("failing") == 2 * (status.WINDOW // 2) - 2
    assert "ok" not in after[after.index("failing") :]


def test_random_failures_at_50_percent_are_failing_all_but_rarely():
    rng = random.Random(7)
    seen = statuses([rng.random() >= 0.5 for _ in range(5000)])
    changes = sum(a != b for a, b in itertools.pairwise(seen))
    assert seen[100:].count("ok") / len(seen[100:]) < 0.03 and changes <= 12


def test_rare_failures_stay_ok():
    rng = random.Random(7)
    assert set(statuses([rng.random() >= 0.05 for _ in range(5000)])) == {"ok"}


def test_an_outage_is_failing_within_five_calls_and_ok_again_after_ten_successes():
    capability = status.Capability()
    assert capability.status == "unknown"
    statuses([True] * 40, capability)
    assert statuses([False] * 5, capability) == ["ok"] * 4 + ["failing"]
    assert statuses([True] * 10, capability) == ["failing"] * 9 + ["ok"]
    assert statuses([False], capability) == ["ok"]  # the outage's failures left the window with it
    assert capability.snapshot()["last_error"] == "chat request failed: InternalServerError"


def test_health_is_failing_when_any_capability_is(fresh_status):
    assert status.snapshot()["status"] == "unknown"
    status.succeeded("embeddings")
    status.failed("chat", "chat request failed: APITimeoutError")
    state = status.snapshot()
    assert (state["status"], state["embeddings"]["status"], state["chat"]["status"]) == (
        "failing",
        "ok",
        "failing",
    )
    assert state["last_error"] == state["chat"]["last_error"] == "chat request failed: APITimeoutError"
    assert state["chat"]["last_success"] is None and state["embeddings"]["last_failure"] is None


def test_given_up_work_is_requeued_once_chat_and_embeddings_answer_again(fresh_status):
    status.succeeded("embeddings")
    assert status.take_recovery() and not status.take_recovery()  # the first answer, once
    status.failed("chat", "chat request failed: InternalServerError")
    status.failed("embeddings", "embedding request failed: InternalServerError")
    status.succeeded("embeddings")
    assert not status.take_recovery()  # summaries need chat too, whose last call failed
    status.succeeded("chat")
    assert status.take_recovery() and not status.take_recovery()


def test_a_failing_capability_is_probed_more_often_and_chat_only_then(fresh_status):
    assert not status.probe_due("chat", 0)  # chat never failed: no chat call for health
    assert status.probe_due("embeddings", 0)
    status.failed("chat", "chat request failed: InternalServerError")
    assert not status.probe_due("chat", 3600)  # just heard from
    status._capabilities["chat"].seen -= status.FAILING_PROBE_SECONDS
    assert status.probe_due("chat", 3600) and not status.probe_due("chat", 3600)  # once per interval


def test_the_probe_records_the_outcome_of_the_capability_it_calls(fresh_status, ai: FakeOpenAIServer):
    client = openai.OpenAI(base_url=ai.openai_base_url, api_key="k", max_retries=0, timeout=5)
    provider = OpenAIProvider(client, name="openai", embedding_model="e", chat_model="c", dimensions=384)
    provider.probe("chat")
    assert (ai.chat_requests, ai.embedding_requests) == (1, 0)
    assert (status.snapshot()["chat"]["status"], status.snapshot()["embeddings"]["status"]) == (
        "ok",
        "unknown",
    )
    ai.chat_fail_rate = 1.0
    provider.probe("embeddings")
    with pytest.raises(AIProviderError, match="chat request failed"):
        provider.probe("chat")
    state = status.snapshot()
    assert (state["chat"]["status"], state["embeddings"]["status"]) == ("failing", "ok")  # 1 of 2 failed
    assert (state["chat"]["recent_calls"], state["chat"]["recent_failures"]) == (2, 1)


def add(api: Api) -> None:
    body = {"title": "Moths and lamps", "transcript": f"Moths circle the lamp {uuid.uuid4().hex}. Bats wait."}
    assert api.post("/api/add_podcast", body).status_code in (201, 202)


@pytest.mark.service
def test_health_is_steady_while_half_the_chat_calls_fail(api: Api, ai: FakeOpenAIServer):
    ai.chat_fail_rate = 0.5  # every second chat request fails; embeddings all answer

    def seen() -> tuple[str, str, str]:
        body = api.get("/api/health").json()["ai"]
        return body["status"], body.get("chat", {}).get("status"), body.get("embeddings", {}).get("status")

    add(api)
    add(api)
    assert wait_for(lambda: seen()[0] == "failing" and seen()[2] != "unknown"), api.get("/api/health").json()
    polls = []
    for _ in range(30):
        add(api)  # a chat call (and its retries by the worker) between polls, half of them failing
        polls.append(api.get("/api/health"))
    bodies = [poll.json() for poll in polls]
    assert [b["ai"]["status"] for b in bodies] == ["failing"] * 30
    assert [b["status"] for b in bodies] == ["degraded"] * 30
    assert [b["ai"]["chat"]["status"] for b in bodies] == ["failing"] * 30
    assert [b["ai"]["embeddings"]["status"] for b in bodies] == ["ok"] * 30
    chat = bodies[-1]["ai"]["chat"]
    assert chat["last_error"] == "chat request failed: InternalServerError"
    assert (
        chat["last_success"] and chat["last_failure"] and chat["recent_failures"] >= chat["recent_calls"] // 2
    )
    assert bodies[-1]["ai"]["embeddings"]["last_failure"] is None
    assert not any(FAKE_API_KEY in poll.text or "simulated failure" in poll.text for poll in polls)
    assert ai.failed_requests >= 15 and ai.chat_requests >= 15  # the service saw both, half and half

    ai.chat_fail_rate = 0.0  # chat is back: ten successes in a row and health says so
    for _ in range(status.RECOVERED_IN_A_ROW):
        add(api)
    assert wait_for(lambda: seen() == ("ok", "ok", "ok")), api.get("/api/health").json()
    assert api.get("/api/health").json()["status"] == "ok"
