"""The naive baseline the benchmarks compare against, served over HTTP like the real app.

`GET /api/naive_recommend?user_id=...&limit=10` does what a first version typically does:
- a new database connection per step;
- an exact scan: L2 distance `<->` with index scans disabled, so every row is read;
- one LLM call per recommended item, one after the other, through the `openai` client;
- one INSERT and commit per item into `suggested_podcasts`, each on a new connection.

Run: `DATABASE_URL=... OPENAI_BASE_URL=... python -m bench.naive_app --port 7081`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from functools import lru_cache

import azure.functions as func
import openai
import psycopg2

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

NEAREST_SQL = """
    SELECT id, title, summary, category, embedding <-> %(q)s::vector AS distance
    FROM podcasts
    WHERE status = 'ready'
      AND id NOT IN (SELECT podcast_id FROM user_listens WHERE user_id = %(user_id)s)
    ORDER BY embedding <-> %(q)s::vector
    LIMIT %(limit)s
"""
REASON_PROMPT = "In one sentence, tell this listener why this podcast episode suits them."


@lru_cache(maxsize=1)
def llm() -> openai.OpenAI:
    return openai.OpenAI(
        base_url=os.environ["OPENAI_BASE_URL"], api_key=os.environ.get("OPENAI_API_KEY", "x")
    )


def respond(body: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def nearest(user_id: str, limit: int) -> tuple[str, list[dict]] | None:
    """The user's history and their `limit` nearest episodes by exact L2 scan."""
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT embedding::text, coalesce(listening_history, '') FROM users WHERE id = %s", (user_id,)
            )
            user = cur.fetchone()
            if user is None or user[0] is None:
                return None
            cur.execute("SET LOCAL enable_indexscan = off")
            cur.execute(NEAREST_SQL, {"q": user[0], "user_id": user_id, "limit": limit})
            columns = [c.name for c in cur.description]
            items = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
        conn.commit()
        return user[1], items
    finally:
        conn.close()


def reason_for(history: str, item: dict) -> str:
    answer = llm().chat.completions.create(
        model=os.environ.get("OPENAI_CHAT_MODEL", "fake-chat"),
        messages=[
            {"role": "system", "content": REASON_PROMPT},
            {"role": "user", "content": f"Listener: {history}\nEpisode: {item['title']}. {item['summary']}"},
        ],
    )
    return answer.choices[0].message.content or item["summary"]


def store(user_id: str, rank: int, item: dict) -> int:
    conn = psycopg2.connect(os.environ["DATABASE_URL"])
    try:
        with conn.cursor() as cur:
            cur.execute(
                "INSERT INTO suggested_podcasts (user_id, podcast_id, similarity, rank, reason)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (user_id, item["podcast_id"], item["similarity"], rank, item["reason"]),
            )
            suggestion_id = cur.fetchone()[0]
        conn.commit()
        return suggestion_id
    finally:
        conn.close()


@app.route(route="naive_recommend", methods=["GET"])
def naive_recommend(req: func.HttpRequest) -> func.HttpResponse:
    user_id = req.params.get("user_id", "")
    limit = int(req.params.get("limit") or 5)
    if not user_id:
        return respond({"error": "user_id is required"}, 400)
    found = nearest(user_id, limit)
    if found is None:
        return respond({"error": "no such user with a profile"}, 404)
    history, items = found
    for rank, item in enumerate(items, start=1):
        item["podcast_id"] = item.pop("id")
        item["similarity"] = 1.0 - float(item.pop("distance")) ** 2 / 2  # cosine, for unit vectors
        item["reason"] = reason_for(history, item)
        item["rank"] = rank
        item["suggestion_id"] = store(user_id, rank, item)
    return respond({"user_id": user_id, "recommendations": items})


def main() -> int:
    import local_runner

    parser = argparse.ArgumentParser(description="Serve the naive baseline.")
    parser.add_argument("--port", type=int, default=7081)
    args = parser.parse_args()
    running = local_runner.serve(app.get_functions(), port=args.port)
    print(f"Serving the naive baseline on http://127.0.0.1:{running.port}", flush=True)
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
