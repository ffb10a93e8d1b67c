"""The netted engagements (`sql/017_engagements.sql`): one row per listener and episode, kept by
triggers in the transaction that writes a listen or an event, equal at every moment to netting
every event again (`model.events.net_engagement`), whoever writes and however."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

import db_utils
from recommender import store
from recommender.model.events import CONSUMPTIONS, JUDGEMENTS, event_weight, net_engagement
from tests.conftest import Api, user_in

EVENTS = ("click", "listen", "complete", "skip", "like", "dislike", "rate")
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def dsn(create_database) -> str:
    dsn = create_database("engagements")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        db_utils.migrate(conn, 384, "test-model")
        cur.execute("INSERT INTO users (id) SELECT 'u' || i FROM generate_series(1, 4) i")
        cur.execute(
            "INSERT INTO podcasts (title, transcript) SELECT 'p' || i, '' FROM generate_series(1, 4) i"
        )
    return dsn


def expected(cur) -> dict[tuple[str, int], tuple[float, datetime, bool]]:
    """Every pair's net engagement, latest time and whether it was played, netted again in Python
    from every event."""
    cur.execute(
        "SELECT user_id, podcast_id, 1.0, false, true, occurred_at, 0 FROM user_listens UNION ALL"
        " SELECT user_id, podcast_id, weight, event = ANY(%s), event = ANY(%s), occurred_at, id"
        " FROM feedback_events",
        (list(JUDGEMENTS), list(CONSUMPTIONS)),
    )
    events: dict[tuple[str, int], list[tuple]] = {}
    for user_id, podcast_id, weight, judged, consumed, at, seq in cur.fetchall():
        events.setdefault((user_id, podcast_id), []).append((at, seq, weight, judged, consumed))
    return {
        pair: (
            net_engagement((w, judged) for _, _, w, judged, _ in sorted(rows)),
            max(r[0] for r in rows),
            any(r[4] for r in rows),
        )
        for pair, rows in events.items()
    }


def stored(cur) -> dict[tuple[str, int], tuple[float, datetime, bool]]:
    cur.execute("SELECT user_id, podcast_id, net, last_at, consumed FROM engagements")
    return {(u, p): (net, at, consumed) for u, p, net, at, consumed in cur.fetchall()}


def assert_netted(cur) -> None:
    want, got = expected(cur), stored(cur)
    assert got.keys() == want.keys()
    for pair, (net, at, consumed) in want.items():
        assert got[pair] == (pytest.approx(net, abs=1e-5), at, consumed), pair


def random_events(rng: random.Random, count: int) -> list[tuple]:
    rows = []
    for _ in range(count):
        event = rng.choice(EVENTS)
        value = rng.choice([1, 2, 3, 4, 5]) if event == "rate" else rng.choice([None, rng.random()])
        if event not in ("rate", "listen"):
            value = None
        at = START + timedelta(hours=rng.randrange(48))  # repeated times: the event id breaks ties
        rows.append(
            (f"u{rng.randint(1, 4)}", rng.randint(1, 4), event, value, event_weight(event, value), at)
        )
    return rows


def test_every_write_keeps_the_netted_rows_equal_to_netting_every_event_again(dsn: str):
    """Bulk inserts with several events on one pair, events stored out of time order, listens,
    plain-SQL updates and deletes, a listener and an episode deleted: after each, the rows are what
    netting all the events again gives."""
    rng = random.Random(5)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for step in range(30):
            action = rng.choice(["events", "events", "events", "listen", "update", "delete"])
            if action == "events":
                cur.executemany(
                    "INSERT INTO feedback_events (user_id, podcast_id, event, value, weight, occurred_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    random_events(rng, rng.randint(1, 12)),
                )
                cur.execute(  # one statement, many events per pair
                    "INSERT INTO feedback_events (user_id, podcast_id, event, value, weight, occurred_at)"
                    " SELECT * FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::real[], %s::real[],"
                    " %s::timestamptz[])",
                    [list(column) for column in zip(*random_events(rng, 20), strict=True)],
                )
            elif action == "listen":
                user, podcast = f"u{rng.randint(1, 4)}", rng.randint(1, 4)
                cur.execute(
                    "INSERT INTO user_listens (user_id, podcast_id, occurred_at) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (user, podcast, START + timedelta(hours=rng.randrange(48))),
                )
            elif action == "update":
                change = rng.choice(["weight = -weight", "occurred_at = occurred_at + interval '3 hours'"])
                cur.execute(f"UPDATE feedback_events SET {change} WHERE id %% 5 = %s", (step % 5,))
                cur.execute("UPDATE user_listens SET occurred_at = occurred_at - interval '1 day'")
            else:
                cur.execute("DELETE FROM feedback_events WHERE id %% 4 = %s", (step % 4,))
                cur.execute("DELETE FROM user_listens WHERE user_id = %s", (f"u{rng.randint(1, 4)}",))
            assert_netted(cur)
        assert len(stored(cur)) > 8  # most pairs have rows: the comparison compared something
        cur.execute("UPDATE feedback_events SET suggestion_id = NULL")  # what netting ignores
        cur.execute("DELETE FROM users WHERE id = 'u1'")  # cascades to its listens and events
        cur.execute("DELETE FROM podcasts WHERE id = 2")
        assert_netted(cur)
        assert not [pair for pair in stored(cur) if pair[0] == "u1" or pair[1] == 2]
        conn.rollback()


def test_the_migration_nets_the_events_stored_before_it_and_truncating_nets_again(
    create_database, monkeypatch
):
    dsn = create_database("engagements_migration")
    every = db_utils.migration_files()
    monkeypatch.setattr(db_utils, "migration_files", lambda: [p for p in every if p.stem < "017"])
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        db_utils.migrate(conn, 384, "test-model")
        cur.execute("INSERT INTO users (id) VALUES ('u1'), ('u2')")
        cur.execute("INSERT INTO podcasts (title, transcript) VALUES ('a', 'x'), ('b', 'y')")
        cur.executemany(
            "INSERT INTO feedback_events (user_id, podcast_id, event, value, weight, occurred_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (user, podcast % 2 + 1, *rest)
                for user, podcast, *rest in random_events(random.Random(3), 40)
                if user in ("u1", "u2")
            ],
        )
        cur.execute("INSERT INTO user_listens (user_id, podcast_id) VALUES ('u2', 1)")
    monkeypatch.setattr(db_utils, "migration_files", lambda: every)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        assert "017_engagements" in db_utils.migrate(conn, 384, "test-model")
        assert_netted(cur)
        assert len(stored(cur)) >= 3
        cur.execute("TRUNCATE feedback_events")
        assert_netted(cur)
        assert list(stored(cur)) == [("u2", 1)]  # the listen


def test_a_listeners_episodes_are_weighed_by_the_signal_the_refresh_chose(dsn: str):
    """A listen then 1 star: -1 while the models learn from judgement, +0.5 once they learn from
    consumption (it was played); a skip alone stays -0.3 (it was not)."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM feedback_events WHERE user_id = 'u4'")
        cur.execute("DELETE FROM user_listens WHERE user_id = 'u4'")
        cur.execute("INSERT INTO user_listens (user_id, podcast_id) VALUES ('u4', 1)")
        cur.execute(
            "INSERT INTO feedback_events (user_id, podcast_id, event, value, weight) VALUES"
            " ('u4', 1, 'rate', 1, -1), ('u4', 3, 'skip', NULL, -0.3)"
        )
        weighed = {}
        for signal in ("judgement", "consumption"):
            cur.execute("UPDATE collaborative_model SET engagement_signal = %s", (signal,))
            items = store.collaborative.listener_items(conn, "u4")
            weighed[signal] = {i.podcast_id: (pytest.approx(i.weight), i.enjoyed) for i in items}
        conn.rollback()
    assert weighed["judgement"] == {1: (-1.0, False), 3: (-0.3, False)}
    assert weighed["consumption"] == {1: (0.5, False), 3: (-0.3, False)}  # played, still not enjoyed


@pytest.mark.service
def test_an_event_sent_over_http_is_in_the_interactions_the_next_refresh_reads(local_api: Api):
    """At once, with no refresh: the refresh reads the netted rows the event's request wrote."""
    user_id = user_in("loop")
    [(episode,)] = local_api.query("SELECT min(id) FROM podcasts WHERE status = 'ready'")
    body = {"user_id": user_id, "listening_history": "Anything."}
    assert local_api.post("/api/update_user_history", body).status_code == 200
    before = read_net(local_api.dsn, episode)
    sent = {"user_id": user_id, "podcast_id": episode, "event": "rate", "value": 1}
    assert local_api.post("/api/feedback", sent).status_code == 201
    assert local_api.query(
        "SELECT net FROM engagements WHERE user_id = %s AND podcast_id = %s", (user_id, episode)
    ) == [(-1.0,)]
    assert read_net(local_api.dsn, episode) == sorted([*before, -1.0])  # what the refresh reads


def read_net(dsn: str, episode: int) -> list[float]:
    """The engagements with `episode` a refresh would read now, held out or not, sorted."""
    conn = psycopg2.connect(dsn)
    try:
        snapshot = store.collaborative.read_snapshot(conn, 1000)
    finally:
        conn.close()
    parts = (snapshot.interactions, snapshot.held_out)
    return sorted(float(w) for part in parts for w in part.engagement[part.podcast_id == episode])
