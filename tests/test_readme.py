"""The API examples of the README and docs/api.md, run as written (curl, in order) on the service
`make run` starts: a fresh database seeded by `cli.py seed --if-empty`, the offline provider."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, Api, run_api

DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "api.md"]  # in the order a reader meets them
HOST = "localhost:7071"

pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(shutil.which("curl") is None, reason="the README's examples use curl"),
]


def examples() -> list[str]:
    """The shell blocks that call the API, in the order a reader meets them."""
    blocks = [
        b for doc in DOCUMENTS for b in re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.DOTALL)
    ]
    return [block for block in blocks if f"{HOST}/api/" in block]


@pytest.fixture(scope="module")
def fresh_run(create_database, tmp_path_factory) -> Iterator[Api]:
    dsn = create_database("readme_examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_", "AI_"))}
    seed = [sys.executable, "cli.py", "seed", "--if-empty"]
    done = subprocess.run(
        seed,
        cwd=ROOT,
        env={**env, "DATABASE_URL": dsn, "AI_PROVIDER": "local"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "warning" not in done.stderr.lower(), done.stderr  # set-up says no more
    with run_api(dsn, {"AI_PROVIDER": "local"}, tmp_path_factory.mktemp("logs") / "readme.log") as api:
        yield api


def run(block: str, api: Api) -> str:
    """Run a documented block with bash; any HTTP error fails it (curl --fail-with-body)."""
    script = 'set -eu\ncurl() { command curl --fail-with-body "$@"; }\n'
    script += block.replace(HOST, api.base_url.removeprefix("http://"))
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{block}\nanswered:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_examples_work_as_written_in_order(fresh_run: Api):
    blocks = examples()
    assert len(blocks) >= 10  # every documented route has its example
    answers = {}
    for block in blocks:
        output = run(block, fresh_run)
        if block.count("curl ") == 1:
            answers[re.search(r"/api/([a-z_]+)", block).group(1)] = json.loads(output)
    page = answers["recommend_podcasts"]["recommendations"]
    assert len(page) == 5 and all(item["reason"] for item in page)
    assert answers["add_podcast"]["status"] == "ready"
    assert "error" not in answers["feedback"]
    assert "Egypt" in answers["search"]["results"][0]["title"]  # what the example searched for


def test_a_listeners_second_and_third_pages_stay_on_topic(fresh_run: Api):
    """The sample catalogue is large enough for three pages of one interest."""
    body = {"user_id": "readme-historian", "listening_history": "Ancient empires, medieval trade and sieges."}
    assert fresh_run.post("/api/update_user_history", body).status_code == 200
    for page in range(1, 4):
        answer = fresh_run.get("/api/recommend_podcasts", params={"user_id": "readme-historian", "limit": 5})
        categories = [item["category"] for item in answer.json()["recommendations"]]
        assert categories.count("history") >= 4, (page, categories)  # one slot may explore
