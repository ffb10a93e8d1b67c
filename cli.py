"""Command line: `python cli.py migrate` and `python cli.py seed`."""

from __future__ import annotations

import argparse
import json
import logging
import sys

import db_utils
import recommender
from config import PROJECT_DIR
from schemas import AddPodcastRequest, UpdateUserHistoryRequest

SAMPLE_DIR = PROJECT_DIR / "sample_data"


def migrate(_: argparse.Namespace) -> int:
    applied = recommender.ensure_database()
    print(f"migrations applied: {', '.join(applied)}")
    return 0


def seed(args: argparse.Namespace) -> int:
    """Load the sample catalog and users through the same code path as the API."""
    recommender.ensure_database()
    with db_utils.connection() as conn, conn.cursor() as cur:
        counts = db_utils.podcast_counts(cur)
    if args.if_empty and sum(counts.values()):
        print(f"catalog already has {sum(counts.values())} podcasts; not seeding")
        return 0
    ids_by_external_id = {}
    for item in json.loads((SAMPLE_DIR / "podcasts.json").read_text()):
        podcast, _ = recommender.add_podcast(AddPodcastRequest.model_validate_json(json.dumps(item)))
        ids_by_external_id[podcast["external_id"]] = podcast["id"]
    for user in json.loads((SAMPLE_DIR / "users.json").read_text()):
        recommender.update_user_history(
            UpdateUserHistoryRequest(
                user_id=user["user_id"],
                name=user["name"],
                listening_history=user["listening_history"],
                listened_podcast_ids=[ids_by_external_id[e] for e in user["listened_external_ids"]],
            )
        )
    print(f"seeded {len(ids_by_external_id)} podcasts and the sample users")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description="Podcast recommender administration")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the SQL migrations in sql/").set_defaults(run=migrate)
    seed_parser = commands.add_parser("seed", help="load sample_data/ (podcasts and users)")
    seed_parser.add_argument("--if-empty", action="store_true", help="only when there are no podcasts")
    seed_parser.set_defaults(run=seed)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except db_utils.SchemaMismatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
