"""Command line: `python cli.py migrate | seed | import FILE | import-events FILE | export-events
| export-suggestions | retry-failed | train`."""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

import db_utils
from config import PROJECT_DIR, get_settings
from recommender import store
from recommender.api.endpoint import json_value
from recommender.model import fusion
from recommender.schemas import AddPodcastRequest, FeedbackRequest, UpdateUserHistoryRequest, describe
from recommender.service import catalogue, feedback, listeners, page_writer
from recommender.service.database import ensure_database
from recommender.service.errors import ServiceError
from recommender.worker import collaborative, ranker

SAMPLE_DIR = PROJECT_DIR / "sample_data"
MAX_ERRORS_SHOWN = 5  # failed events listed by `import-events`
OFFLINE_BY_DEFAULT = """\
error: DATABASE_URL names a database, but no AI service is configured here, so this command would
use the offline model (384-dimension vectors) while a deployed app embeds with Azure OpenAI or
OpenAI (1536 for text-embedding-3-small): the schema would not fit the app. Either
  - give this command the app's AI settings (AZURE_OPENAI_ENDPOINT and the deployment names, or
    OPENAI_API_KEY), or
  - let the deployed app create the schema itself on its first request (no command needed), or
  - set AI_PROVIDER=local if this database is meant for the offline model."""


def migrate(_: argparse.Namespace) -> int:
    applied = ensure_database()
    print(f"migrations applied: {', '.join(applied)}")
    return 0


def seed(args: argparse.Namespace) -> int:
    """Load the sample catalog and users through the same code path as the API."""
    ensure_database()
    with db_utils.connection() as conn:
        counts = store.podcasts.counts(conn, get_settings().enrich_max_attempts)
    if args.if_empty and counts["ready"] + counts["pending"]:
        print(f"catalog already has {counts['ready'] + counts['pending']} podcasts; not seeding")
        return 0
    ids_by_external_id = {}
    for item in json.loads((SAMPLE_DIR / "podcasts.json").read_text()):
        podcast, _ = catalogue.add_podcast(AddPodcastRequest.model_validate_json(json.dumps(item)))
        ids_by_external_id[podcast["external_id"]] = podcast["id"]
    for user in json.loads((SAMPLE_DIR / "users.json").read_text()):
        listeners.update_user_history(
            UpdateUserHistoryRequest(
                user_id=user["user_id"],
                name=user["name"],
                listening_history=user["listening_history"],
                listened_podcast_ids=[ids_by_external_id[e] for e in user["listened_external_ids"]],
            )
        )
    print(f"seeded {len(ids_by_external_id)} podcasts and the sample users")
    return 0


def read_records(path: Path, model: type[BaseModel]) -> Iterator[tuple[int, str]]:
    """(line number, the record as JSON text) for each row of a CSV file (a header line of
    `model`'s field names; empty cells left out, numbers parsed in the fields of `model` that take
    numbers) or each line of a JSONL file. A line that is not JSON is reported by the validation."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise InputError(
            f"{path}: give a .csv file (with a header line) or a .jsonl file (one object a line)"
        )
    with path.open(newline="", encoding="utf-8-sig") as handle:
        if suffix == ".csv":
            numeric = {name: number_types(field.annotation) for name, field in model.model_fields.items()}
            reader = csv.DictReader(handle)
            for row in reader:
                record = {k: v for k, v in row.items() if v not in (None, "")}
                for name in record.keys() & numeric.keys():
                    record[name] = parse_number(record[name], numeric[name])
                yield reader.line_num, json.dumps(record)
        else:
            yield from ((number, line) for number, line in enumerate(handle, 1) if line.strip())


def record_problem(exc: ValidationError) -> str:
    """What is wrong with one record: its line is not JSON, or a field is not valid."""
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        return f"not valid JSON ({str(first['msg']).removeprefix('Invalid JSON: ')})"
    return describe(exc)


class InputError(Exception):
    """A file a command cannot read as it was asked to."""


def number_types(annotation: Any) -> set[type]:
    """Which of int and float a field with this annotation takes (through Optional, unions and
    Annotated constraints)."""
    if get_origin(annotation) is Annotated:
        return number_types(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return set().union(*(number_types(arg) for arg in get_args(annotation)))
    return {annotation} & {int, float}


def parse_number(text: str, types: set[type]) -> Any:
    """`text` as the first of int, then float, that it parses as and the field takes; else as is
    (for validation to report)."""
    for kind in (int, float):
        if kind in types:
            try:
                return kind(text)
            except ValueError:
                pass
    return text


def progress_off(args: argparse.Namespace) -> bool | None:
    """`--quiet`, or None: tqdm then draws the bar only on a terminal (not twice into a log)."""
    return True if args.quiet else None


def import_podcasts(args: argparse.Namespace) -> int:
    """Bulk-load episodes from CSV or JSONL through the same path as `POST /api/add_podcasts`."""
    from tqdm import tqdm

    ensure_database()
    counts = {"ready": 0, "pending": 0, "invalid": 0}
    records = list(read_records(Path(args.file), AddPodcastRequest))
    index = store.podcasts.vector_index_built_after() if args.index_after else contextlib.nullcontext()
    with index, tqdm(total=len(records), unit="episode", disable=progress_off(args)) as progress:
        for start in range(0, len(records), args.batch_size):
            batch = []
            for number, record in records[start : start + args.batch_size]:
                try:
                    batch.append(AddPodcastRequest.model_validate_json(record))
                except ValidationError as exc:
                    counts["invalid"] += 1
                    progress.write(f"line {number}: {record_problem(exc)} (skipped)")
            for podcast, _ in catalogue.add_podcasts(batch) if batch else []:
                counts[podcast["status"]] += 1
            progress.update(len(records[start : start + args.batch_size]))
    print(f"imported {counts['ready']} ready, {counts['pending']} pending, {counts['invalid']} invalid")
    return 0 if not counts["invalid"] else 1


def with_occurred_at(record: str) -> str:
    """The record with its `timestamp` (Unix seconds, as rating data sets ship them), if it has
    one, as its `occurred_at`. Raises ValueError when it is not a time."""
    try:
        fields = json.loads(record)
    except json.JSONDecodeError:
        return record  # the validation reports it
    if not isinstance(fields, dict) or "timestamp" not in fields:
        return record
    seconds = fields.pop("timestamp")
    if "occurred_at" in fields:
        raise ValueError("give occurred_at or timestamp, not both")
    try:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float | str):
            raise TypeError
        fields["occurred_at"] = datetime.fromtimestamp(float(seconds), UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        raise ValueError(f"timestamp: must be Unix seconds, not {seconds!r}") from None
    return json.dumps(fields)


def import_events(args: argparse.Namespace) -> int:
    """Bulk-load feedback events from CSV or JSONL through the same path as `POST /api/feedback`
    with an array. Events already stored (same user_id and event_id) are not stored or applied
    again, so a file can be imported again safely. Their times come from `occurred_at` or, in Unix
    seconds, `timestamp`; without either they happened when they are imported."""
    from tqdm import tqdm

    ensure_database()
    created = repeated = 0
    errors: list[tuple[int, str]] = []  # (line, message)
    records = list(read_records(Path(args.file), FeedbackRequest))
    with tqdm(total=len(records), unit="event", disable=progress_off(args)) as progress:
        for start in range(0, len(records), args.batch_size):
            batch = records[start : start + args.batch_size]
            valid = []
            for line, record in batch:
                try:
                    valid.append((line, FeedbackRequest.model_validate_json(with_occurred_at(record))))
                except ValidationError as exc:
                    errors.append((line, f"invalid_request: {record_problem(exc)}"))
                except ValueError as exc:
                    errors.append((line, f"invalid_request: {exc}"))
            outcomes = feedback.record_feedback_bulk([request for _, request in valid])
            for (line, _), outcome in zip(valid, outcomes, strict=True):
                if isinstance(outcome, ServiceError):
                    errors.append((line, f"{outcome.code}: {outcome.message}"))
                elif outcome[1]:
                    created += 1
                else:
                    repeated += 1
            progress.update(len(batch))
    print(f"imported {created} new events, {repeated} already stored, {len(errors)} failed")
    for line, message in sorted(errors)[:MAX_ERRORS_SHOWN]:
        print(f"  line {line}: {message}")
    if len(errors) > MAX_ERRORS_SHOWN:
        print(f"  ... and {len(errors) - MAX_ERRORS_SHOWN} more")
    return 1 if errors else 0


def export_events(args: argparse.Namespace) -> int:
    """Feedback events as `import-events` reads them (CSV if the output ends in .csv, else JSONL),
    each with the time it happened: a history to move to another deployment, or back."""
    ensure_database()
    since = datetime.fromisoformat(args.since) if args.since else datetime.min
    as_csv = bool(args.output) and args.output.lower().endswith(".csv")
    count = anonymous = 0
    to_file = open(args.output, "w", newline="", encoding="utf-8") if args.output else None  # noqa: SIM115
    with to_file or contextlib.nullcontext(sys.stdout) as output:
        writer = csv.DictWriter(output, store.feedback.EXPORT_FIELDS) if as_csv else None
        if writer:
            writer.writeheader()
        with db_utils.connection() as conn:
            for event in store.feedback.exported(conn, since):
                record = {**event, "occurred_at": event["occurred_at"].isoformat()}
                if writer:
                    writer.writerow(record)
                else:
                    output.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
                anonymous += event["event_id"] is None
    print(f"exported {count} events", file=sys.stderr)
    if anonymous:
        print(
            f"{anonymous} have no event_id: imported where they are stored, they are stored again",
            file=sys.stderr,
        )
    return 0


def export_suggestions(args: argparse.Namespace) -> int:
    """Suggestions with their outcomes, one JSON object a line: an evaluation data set."""
    ensure_database()
    since = datetime.fromisoformat(args.since) if args.since else datetime.min
    output = open(args.output, "w") if args.output else sys.stdout  # noqa: SIM115
    count = 0
    with db_utils.connection() as conn:
        for row in store.analytics.suggestions_with_outcomes(conn, since):
            output.write(json.dumps(row, default=json_value, ensure_ascii=False) + "\n")
            count += 1
    if args.output:
        output.close()
    print(f"exported {count} suggestions", file=sys.stderr)
    return 0


def retry_failed(_: argparse.Namespace) -> int:
    """Episodes the worker gave up on get their fast retries again, due now."""
    ensure_database()
    with db_utils.connection() as conn:
        requeued = store.podcasts.requeue_failed(conn, get_settings().enrich_max_attempts)
    print(f"requeued {requeued} podcasts for enrichment")
    return 0


def train(_: argparse.Namespace) -> int:
    """Train every model now, as the worker does when enough events arrived: the collaborative
    model (co-engagement neighbours and factors, the tables of docs/loop.md) and the ranker."""
    ensure_database()
    if not collaborative.refresh_if_due(force=True):
        print("another process is training the model; try again when it is done", file=sys.stderr)
        return 1
    ranked = ranker.train_if_due(force=True)
    with db_utils.connection() as conn:
        state = store.collaborative.freshness(conn)
        learned = store.ranker.state(conn)
    print(
        f"trained: {state['episodes']} episodes with neighbours in {state['refresh_seconds']:.1f} s,"
        f" {state['factor_episodes']} with factors in {state['factor_seconds']:.1f} s"
    )
    if ranked and learned is not None:
        verdict = "adopted" if learned["adopted"] else "not adopted, the blend ranks"
        print(
            f"ranker v{learned['version']} ({learned['kind']}, {learned['rows']} shown items): NDCG@5"
            f" {learned['validation_ndcg']:.4f}, blend {learned['blend_ndcg']:.4f}: {verdict}"
        )
        if learned["blend"] is not None:
            blend = fusion.FittedBlend.from_stored(learned["blend"])
            verdict = "adopted" if blend.adopted else "not adopted, the configured weights rank"
            print(
                f"blend fitted on {blend.pages} pages: {blend.weights}; NDCG@5 {blend.validation_ndcg}"
                f" out of sample, configured {blend.configured_ndcg}: {verdict}"
            )
    else:
        print("ranker: too few pages with reactions to learn from; the blend ranks")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description="Podcast recommender administration")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the SQL migrations in sql/").set_defaults(run=migrate)
    seed_parser = commands.add_parser("seed", help="load sample_data/ (podcasts and users)")
    seed_parser.add_argument("--if-empty", action="store_true", help="only when there are no podcasts")
    seed_parser.set_defaults(run=seed)
    import_parser = commands.add_parser("import", help="load episodes from a CSV or JSONL file")
    import_parser.add_argument("file", help="a .csv (with a header line) or .jsonl file")
    import_parser.add_argument("--batch-size", type=int, default=100)
    import_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    import_parser.add_argument(
        "--index-after",
        action="store_true",
        help="drop the vector index while loading and build it once at the end (large imports;"
        " searches scan exactly meanwhile)",
    )
    import_parser.set_defaults(run=import_podcasts)
    events_parser = commands.add_parser("import-events", help="load feedback events from a CSV or JSONL file")
    events_parser.add_argument("file", help="a .csv (a header line of feedback field names) or .jsonl file")
    events_parser.add_argument("--batch-size", type=int, default=1000, help="events per transaction")
    events_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    events_parser.set_defaults(run=import_events)
    export_events_parser = commands.add_parser(
        "export-events", help="feedback events as import-events reads them (CSV or JSONL)"
    )
    export_events_parser.add_argument("--since", help="ISO date or time they happened from (default: all)")
    export_events_parser.add_argument("--output", help="a .csv or .jsonl file (default: JSONL on stdout)")
    export_events_parser.set_defaults(run=export_events)
    export_parser = commands.add_parser("export-suggestions", help="suggestions with outcomes, as JSONL")
    export_parser.add_argument("--since", help="ISO date or time (default: everything)")
    export_parser.add_argument("--output", help="file to write (default: standard output)")
    export_parser.set_defaults(run=export_suggestions)
    retry_help = "requeue the episodes whose enrichment was given up on (after ENRICH_MAX_ATTEMPTS)"
    commands.add_parser("retry-failed", help=retry_help).set_defaults(run=retry_failed)
    train_help = "rebuild the collaborative model (neighbours and factors) now, as the worker does"
    commands.add_parser("train", help=train_help).set_defaults(run=train)
    args = parser.parse_args(argv)
    page_writer.writes_here = False
    settings = get_settings()
    if settings.database_url and settings.offline_by_default:
        print(OFFLINE_BY_DEFAULT, file=sys.stderr)
        return 2
    try:
        return args.run(args)
    except (db_utils.SchemaMismatchError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that is missing or cannot be read
        if exc.filename is None:
            raise
        print(f"error: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
