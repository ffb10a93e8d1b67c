"""The Spark training job (`recommender/spark/train.py`) in local mode against the embedded Postgres:
what it writes through the training tables' contract is what the service's own model code computes
from the same engagements, and the service serves pages from it.

It needs Java, the Postgres JDBC driver and `.venv-spark` (`make spark` installs them, as `make test`
does); where one is missing the job's test skips, saying which."""

from __future__ import annotations

import ast
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import psycopg2
import pytest
from psycopg2.extensions import parse_dsn

from recommender import store
from recommender.model import collaborative, factors, ranker
from recommender.spark import train
from tests.conftest import ROOT, Api, run_api, user_in
from tests.test_collaborative import add_episode, recommend

SPARK_PYTHON = ROOT / ".venv-spark" / "bin" / "python"
JDBC_JAR = Path(os.environ.get("POSTGRES_JDBC_JAR", "/usr/share/java/postgresql.jar"))
TOPICS = ("astronomy", "cooking", "football")
EPISODES_PER_TOPIC = 8
LISTENERS = 45
ARGS = {"--min-listeners": "20", "--neighbors": "100", "--collab-alpha": "0.7", "--half-life-days": "14"}


def missing() -> str | None:
    """What the job needs that this machine lacks, if anything."""
    if shutil.which("java") is None:
        return "no `java` (make spark installs openjdk-17-jre-headless)"
    if not JDBC_JAR.exists():
        return f"no Postgres JDBC driver at {JDBC_JAR} (make spark installs libpostgresql-jdbc-java)"
    if not SPARK_PYTHON.exists():
        return "no .venv-spark (make spark makes it from requirements-spark.txt)"
    return None


def test_the_job_holds_out_what_the_service_holds_out():
    """The job cannot import the service, so it has its own copy of the held-out pairs' SQL."""
    assert train.HELD_OUT == store.collaborative.HELD_OUT
    assert (train.BOOTSTRAP_LISTENER_SHARE, train.HIDDEN_SHARE) == (
        ranker.BOOTSTRAP_LISTENER_SHARE,
        ranker.HIDDEN_SHARE,
    )
    assert train.DIMENSIONS == factors.DIMENSIONS


@contextmanager
def tcp_to_unix_socket(path: str) -> Iterator[int]:
    """A local TCP port forwarded to the Unix socket `path`: the embedded Postgres listens on a
    socket only, JDBC speaks TCP only (a production database is TCP anyway)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def pump(source: socket.socket, target: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        for end in (source, target):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(path)
            for ends in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=ends, daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()


def jdbc_url(dsn: str, port: int) -> str:
    return f"jdbc:postgresql://127.0.0.1:{port}/{parse_dsn(dsn)['dbname']}"


def postgres_socket(dsn: str) -> str:
    [path] = Path(parse_dsn(dsn)["host"]).glob(".s.PGSQL.*[0-9]")
    return str(path)


def run_job(dsn: str) -> dict:
    """spark-submit the job in local mode, small, as a deployment would run it on a cluster."""
    jar = str(JDBC_JAR)
    command = [str(SPARK_PYTHON.parent / "spark-submit"), "--master", "local[2]", "--driver-memory", "1g"]
    command += ["--conf", "spark.ui.enabled=false", "--conf", "spark.sql.shuffle.partitions=4"]
    command += ["--jars", jar, "--driver-class-path", jar, str(ROOT / "recommender" / "spark" / "train.py")]
    with tcp_to_unix_socket(postgres_socket(dsn)) as port:
        command += ["--jdbc-url", jdbc_url(dsn, port), *[part for item in ARGS.items() for part in item]]
        env = {**os.environ, "PYSPARK_PYTHON": str(SPARK_PYTHON), "PYSPARK_DRIVER_PYTHON": str(SPARK_PYTHON)}
        env |= {"PGUSER": parse_dsn(dsn).get("user", "postgres"), "PGPASSWORD": ""}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-20000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def listen_and_react(api: Api, rng: random.Random) -> dict[str, list[int]]:
    """Episodes of three topics; listeners of one topic each, who listened to one of its episodes,
    liked four and skipped or disliked one of another topic. Returns episode ids by topic."""
    by_topic: dict[str, list[int]] = {}
    for topic in TOPICS:
        by_topic[topic] = [
            add_episode(api, f"{topic.title()} hour {n}", f"A talk about {topic}, part {n}.", topic)
            for n in range(EPISODES_PER_TOPIC)
        ]
    for n in range(LISTENERS):
        topic = TOPICS[n % len(TOPICS)]
        mine = rng.sample(by_topic[topic], 5)
        other = rng.choice(by_topic[TOPICS[(n + 1) % len(TOPICS)]])
        user_id = user_in("loop")
        body = {"user_id": user_id, "listening_history": f"I like {topic}.", "listened_podcast_ids": mine[:1]}
        assert api.post("/api/update_user_history", body).status_code == 200
        events = [{"user_id": user_id, "podcast_id": pid, "event": "like"} for pid in mine[1:]]
        events.append({"user_id": user_id, "podcast_id": other, "event": rng.choice(["skip", "dislike"])})
        response = api.post("/api/feedback", events)
        assert response.status_code == 200 and len(response.json()["results"]) == len(events), response.text
    return by_topic


@pytest.mark.service
def test_the_spark_job_writes_the_contract_and_the_service_serves_it(create_database, tmp_path):
    if reason := missing():
        pytest.skip(f"the Spark job cannot run here: {reason}")
    env = {"AI_PROVIDER": "local", "AB_SPLIT": "loop:100", "EXPLORATION_SHARE": "0"}
    env |= {"COLLAB_REFRESH_IN_SERVICE": "false", "COLLAB_REFRESH_SECONDS": "0"}  # the job trains
    with run_api(create_database("spark_job"), env, tmp_path / "spark.log") as api:
        by_topic = listen_and_react(api, random.Random(7))
        summary = run_job(api.dsn)
        print("spark job:", summary)  # its timings, for docs/benchmarks.md

        # The co-engagement rows are what the service's own code builds from the same engagements.
        conn = psycopg2.connect(api.dsn)
        try:
            snapshot = store.collaborative.read_snapshot(conn, 500)  # commits its own transaction
        finally:
            conn.close()
        learned = collaborative.learn_signal(snapshot.interactions, snapshot.held_out, 3000, 50)
        assert learned.signal == "judgement"
        model = collaborative.model_of(learned, 100, 0.7, 14.0)
        assert model is not None
        rows = api.query(
            "SELECT podcast_id, popularity, listeners, neighbor_ids, neighbor_scores, ease_ids"
            " FROM podcast_engagement ORDER BY podcast_id"
        )
        assert [row[0] for row in rows] == model.episodes.tolist()
        assert [row[2] for row in rows] == model.listeners.tolist()
        assert np.allclose([row[1] for row in rows], model.popularity, rtol=1e-4)
        for row, ids, scores in zip(rows, model.neighbor_ids, model.neighbor_scores, strict=True):
            assert dict(zip(row[3], row[4], strict=True)) == pytest.approx(
                dict(zip(ids.tolist(), scores.tolist(), strict=True)), rel=1e-5
            )
            assert row[4] == sorted(row[4], reverse=True) and row[5] == []  # best first; no EASE
        assert sum(len(row[3]) for row in rows) > len(rows) * 5

        # The factors: every episode someone enjoyed, Y'Y of the rows as stored, the fold-in's constants.
        enjoyed = np.unique(snapshot.interactions.podcast_id[snapshot.interactions.engagement > 0])
        with psycopg2.connect(api.dsn) as conn:
            y = store.factors.of_episodes(conn, enjoyed.tolist())
            constants = store.factors.fold_in_constants(conn)
        assert (
            sorted(y)
            == enjoyed.tolist()
            == [pid for (pid,) in api.query("SELECT podcast_id FROM podcast_factors ORDER BY 1")]
        )
        assert constants is not None and (constants.regularization, constants.alpha) == (1.0, 5.0)
        assert np.allclose(constants.gram, factors.gram(np.vstack(list(y.values()))), rtol=1e-5, atol=1e-6)
        # A listener folded in from two astronomy likes matches astronomy best.
        liked = by_topic["astronomy"][:2]
        taste = factors.fold_in(constants.gram, 1.0, 5.0, np.vstack([y[p] for p in liked]), np.ones(2))
        score = {pid: float(row @ taste) for pid, row in y.items() if pid not in liked}
        astronomy = [score[p] for p in by_topic["astronomy"] if p in score]
        others = [score[p] for topic in TOPICS[1:] for p in by_topic[topic] if p in score]
        assert min(astronomy) > max(others), (astronomy, others)

        health = api.get("/api/health").json()["collaborative"]
        assert health["factors"]["trained_by"].startswith("spark 3.5") and health["events_since_refresh"] == 0
        assert health["factors"]["episodes"] == summary["factor_episodes"] == len(enjoyed)
        assert summary["listeners"] == model.active_listeners

        # A page from the Spark-written model: co-engagement evidence and factor affinity.
        user_id = user_in("loop")
        body = {"user_id": user_id, "listening_history": "Anything at all.", "listened_podcast_ids": liked}
        assert api.post("/api/update_user_history", body).status_code == 200
        page = recommend(api, user_id, limit=5)
        assert {item["podcast_id"] for item in page} <= set(by_topic["astronomy"]), page
        behaviour = [item for item in page if item["strategy"] == "collaborative"]
        assert behaviour and all(item["evidence"]["kind"] == "co_engagement" for item in behaviour), page
        assert {item["evidence"]["podcast_id"] for item in behaviour} <= set(liked)
        logged = api.query("SELECT features FROM suggested_podcasts WHERE user_id = %s", (user_id,))
        assert all(features[ranker.FEATURES.index("factors")] > 0 for (features,) in logged), logged


def test_the_job_imports_only_pyspark_and_the_standard_library():
    """So it can be uploaded to a cluster as one file."""
    for path in (ROOT / "recommender" / "spark").glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {
            alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        roots = {name.split(".")[0] for name in names}
        assert roots <= {*sys.stdlib_module_names, "pyspark"}, (path.name, roots)
