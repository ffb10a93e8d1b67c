"""A listener's page of recommendations: prepared ahead, or computed when they ask for it.

No request waits on the LLM in the steady state, and most do not rank either. Each served page
(after the listener's first), each event of a listener served lately and each history update
queues the listener; once due, this process's writer thread computes the page their next
request will get (the same function a request runs), one page at a time, has the LLM write the
reasons it lacks, one call per page, and stores the page with them. The next request serves
that page as stored while the listener is unchanged and its episodes are still ready; otherwise
it computes the page, serving the reasons written for it earlier (in `reasons`, valid while the
evidence they were written from holds) and the evidence sentence for the rest, while the writer
catches up.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

import collaborative
import db_utils
import ranking
import reasons
from config import get_settings
from openai_client import content_words, get_provider

log = logging.getLogger(__name__)

CANDIDATES_PER_SLOT = 4  # candidates fetched per requested item, for re-ranking to choose from
MIN_CANDIDATES = 20
IDLE_SECONDS = 30.0  # the writer looks at the queue this often when nothing woke it
RETRY_SECONDS = 5.0  # after the database failed it
MIN_PAUSE_SECONDS = 0.05  # between looks at the queue while pages are due or every slot is busy


INTERNAL_FIELDS = ("embedding", "collaborative", "because_of", "popularity", "listeners")  # not served
CURRENT_FIELDS = ("title", "summary", "category")  # a prepared page's episodes: read when it is served


@dataclass
class Page:
    variant: ranking.Variant
    items: list[dict[str, Any]]  # each with its evidence and the valid written reason, if any
    user: dict[str, Any] | None = None  # what a computed page was computed from (get_user) ...
    positives: list[dict[str, Any]] | None = None  # ... and the listener's enjoyed episodes
    prepared: bool = False  # computed ahead and served as stored: its reasons are all it has

    def unwritten(self) -> list[dict[str, Any]]:
        return [item for item in self.items if not item["cached_reason"]]


def compute(conn, user: dict[str, Any], limit: int, category: str | None) -> Page:
    """Candidates by content (HNSW) and by co-engagement, blended with popularity, re-ranked for
    the user's variant, each with its evidence. Users with nothing to go on get popular, then
    new, episodes. Reads only: the same state gives the same page."""
    settings = get_settings()
    variant = ranking.assign_variant(user["id"], ranking.parse_split(settings.ab_split), settings.ab_salt)
    profile = user["embedding"] if variant.use_feedback else user["history_profile"]
    excluded, recent = db_utils.exclusions(conn, user["id"], settings.resuggest_window_hours)
    mine = collaborative.listener_items(conn, user["id"])
    wanted = max(limit * CANDIDATES_PER_SLOT, MIN_CANDIDATES) + len(recent)
    candidates = gather_candidates(
        conn, user, profile, mine if variant.use_behaviour else [], wanted, excluded, category
    )
    if candidates:
        negatives = db_utils.negative_examples(conn, user["id"]) if variant.use_feedback else None
        # Exploration is random but stable for a user within a day, so the page prepared ahead
        # and the page then requested make the same picks.
        rng = random.Random(f"{user['id']}:{datetime.now(UTC).date()}")
        items = choose(candidates, recent, limit, variant, blend_weights(variant), negatives, rng)
    else:
        items = collaborative.popular(conn, limit + len(recent), excluded=excluded, category=category)
        items.sort(key=lambda item: item["podcast_id"] in recent)  # stable: fresh ones first
        items = items[:limit]
        written = db_utils.written_reasons(
            conn, user["id"], [i["podcast_id"] for i in items], user["reasons_valid_from"]
        )
        for item in items:
            item |= {"strategy": "popular", "similarity": None}
            item["cached_reason"], item["cached_evidence"] = written.get(item["podcast_id"], (None, None))
    positives = [m for m in mine if m["weight"] > 0]
    history_words = set(content_words(f"{user['listening_history'] or ''} {user['interest_profile'] or ''}"))
    for item in items:
        item["evidence"] = reasons.evidence(item, positives, history_words)
        if item.pop("cached_evidence", None) != reasons.evidence_key(item["evidence"]):
            item["cached_reason"] = None  # written for other evidence: no longer true
    return Page(variant, items, user, positives)


def blend_weights(variant: ranking.Variant) -> ranking.BlendWeights:
    if not variant.use_behaviour:
        return ranking.BlendWeights(collaborative=0.0, content=1.0, popularity=0.0)
    settings = get_settings()
    return ranking.BlendWeights(
        settings.blend_collaborative, settings.blend_content, settings.blend_popularity
    )


def gather_candidates(
    conn,
    user: dict[str, Any],
    profile: np.ndarray | None,
    mine: list[dict[str, Any]],
    count: int,
    excluded: list[int],
    category: str | None,
) -> list[dict[str, Any]]:
    """Content neighbours of the profile and behaviour neighbours of the listener's episodes,
    each with its co-engagement score (0 when none) and the episode of theirs behind it."""
    scope = {"user_id": user["id"], "reasons_valid_from": user["reasons_valid_from"]}
    content = []
    if profile is not None:
        content = db_utils.candidate_podcasts(
            conn,
            profile,
            count,
            excluded=excluded,
            category=category,
            ef_search=get_settings().hnsw_ef_search,
            **scope,
        )
    known = {row["podcast_id"] for row in content}
    scores = collaborative.neighbour_scores(
        conn, mine, count, include=sorted(known), excluded=excluded, category=category
    )
    extra = db_utils.candidates_by_id(conn, [pid for pid in scores if pid not in known], profile, **scope)
    candidates = content + extra
    for row in candidates:
        score = scores.get(row["podcast_id"])
        row["collaborative"] = float(score["score"]) if score else 0.0
        row["because_of"] = score["because_of"] if score else None
    return candidates


def choose(
    candidates: list[dict[str, Any]],
    recent: set[int],
    limit: int,
    variant: ranking.Variant,
    weights: ranking.BlendWeights,
    negatives: np.ndarray | None,
    rng: random.Random,
) -> list[dict[str, Any]]:
    """Blend and re-rank; episodes suggested within the window are used only when fresh ones
    run out."""
    fresh = [c for c in candidates if c["podcast_id"] not in recent]
    pool = fresh if len(fresh) >= limit else fresh + [c for c in candidates if c["podcast_id"] in recent]
    relevance, behaviour_led = ranking.blend(
        np.array([c["collaborative"] for c in pool]),
        np.array([c["similarity"] or 0.0 for c in pool]),
        np.array([c["popularity"] for c in pool]),
        weights,
    )
    vectors = np.vstack([c["embedding"] for c in pool])
    items = []
    for row, strategy in ranking.rerank(relevance, vectors, limit, variant, negatives, rng):
        item = dict(pool[row])
        item["strategy"] = "collaborative" if strategy == "similar" and behaviour_led[row] else strategy
        item["similarity"] = None if item["similarity"] is None else round(item["similarity"], 4)
        item["score"] = round(float(relevance[row]), 4)
        items.append(item)
    return items


def write_reasons(page: Page) -> dict[int, str]:
    """One LLM call for the page's items without a valid reason; stored for later pages too.
    Returns the reasons written by podcast id (none when the AI service failed)."""
    unwritten = page.unwritten()
    if not unwritten:
        return {}
    assert page.user is not None and page.positives is not None  # reasons are written for computed pages
    written = reasons.write_reasons(reasons.listener_profile(page.user, page.positives), unwritten)
    if written:
        keys = {item["podcast_id"]: reasons.evidence_key(item["evidence"]) for item in unwritten}
        rows = [(pid, keys[pid], reason) for pid, reason in written.items()]
        with db_utils.connection() as conn:
            db_utils.commit_asynchronously(conn)
            # Dated when the page was read: a profile that changed meanwhile makes them stale.
            db_utils.save_reasons(conn, page.user["id"], rows, written_at=page.user["read_at"])
            if get_provider().name != "local":
                db_utils.count_ai_calls(conn, "reasons")
    return written


def prepare(user_id: str, page_size: int, category: str | None) -> tuple[Page, int] | None:
    """Compute the listener's next page and store it for their next request when it has every
    reason it needs. Otherwise return it with the newest suggestion it was computed after, for
    `finish` to have the LLM write what it lacks.

    The page is computed under the listener's page lock (none of their pages is served
    meanwhile), so a complete page is stored in the same transaction."""
    with db_utils.connection() as conn:
        db_utils.begin_page(conn, user_id)
        user = db_utils.get_user(conn, user_id)
        if user is None:
            return None
        page = compute(conn, user, page_size, category)
        if not page.unwritten():
            _store(conn, page, page_size, category, {})
            return None
        return page, db_utils.newest_suggestion(conn, user_id)


def finish(page: Page, seen: int, page_size: int, category: str | None) -> int:
    """Have the LLM write the reasons `prepare` left, then store the page, unless a suggestion
    newer than `seen` was served meanwhile (the page would repeat it). Returns how many it wrote."""
    written = write_reasons(page)
    assert page.user is not None  # a computed page
    with db_utils.connection() as conn:
        db_utils.begin_page(conn, page.user["id"])
        _store(conn, page, page_size, category, written, seen)
    return len(written)


def _store(
    conn, page: Page, page_size: int, category: str | None, written: dict[int, str], seen: int | None = None
) -> None:
    left_out = {*INTERNAL_FIELDS, *CURRENT_FIELDS, "cached_reason"}
    items = [
        {
            **{k: v for k, v in item.items() if k not in left_out},
            "reason": item["cached_reason"] or written.get(item["podcast_id"]),
        }
        for item in page.items
    ]
    assert page.user is not None  # a computed page
    db_utils.store_prepared_page(conn, page.user, page_size, category, page.variant.name, items, seen)


def take_prepared(conn, user_id: str, limit: int, category: str | None) -> Page | None:
    """The page prepared for this request, if it still holds: the listener (no event, history or
    profile change) and the collaborative model unchanged since, the same size, category and
    variant, not older than PREPARE_MAX_AGE_SECONDS and every episode still ready. It is taken
    either way: the page served now makes it obsolete."""
    prepared = db_utils.take_prepared_page(conn, user_id)
    if prepared is None:
        return None
    settings = get_settings()
    variant = ranking.assign_variant(user_id, ranking.parse_split(settings.ab_split), settings.ab_salt)
    asked = (limit, category, variant.name)
    holds = (
        prepared["current"]
        and (prepared["page_size"], prepared["category"], prepared["variant"]) == asked
        and prepared["age_seconds"] <= settings.prepare_max_age_seconds
        and len(prepared["items"]) == prepared["size"]
    )
    if not holds:
        return None
    items = prepared["items"]
    for item in items:
        item["cached_reason"] = item.pop("reason")
    return Page(variant, items, prepared=True)


# --- the writer: one thread per process, LLM calls on a small pool ----------------------

_wake = threading.Event()
_writer: threading.Thread | None = None
_writer_lock = threading.Lock()
_next_look = math.inf  # when the writer looks at the queue next (time.monotonic); inf while it looks


def wake() -> None:
    """Tell this process's writer a page was queued (starting the writer on first use). A page
    queued now is due PREPARE_DELAY_SECONDS from now: the writer is woken only if it would not
    look at the queue by then, so requests do not each cost the writer a look."""
    global _writer
    settings = get_settings()
    if not settings.prepare_pages:
        return
    with _writer_lock:
        if _writer is None or not _writer.is_alive():
            _writer = threading.Thread(target=_write_ahead, name="page-writer", daemon=True)
            _writer.start()
    if time.monotonic() + settings.prepare_delay_seconds < _next_look:
        _wake.set()


def _write_ahead() -> None:
    """Claim due pages while LLM slots are free (several processes share the queue) and compute
    them one at a time; pages that need the LLM are finished on the pool. Then sleep until the
    next is due, a slot frees up or something wakes the writer.

    One page at a time: the writer's work is speculative (the listener may not come back), so it
    must not crowd out requests. When they keep every core busy, the writer falls behind and
    those listeners' pages are computed on their request, which costs less than computing them
    ahead and storing them (bench/findings.md)."""
    global _next_look
    settings = get_settings()
    slots = settings.ai_concurrency
    in_flight: set[Future] = set()
    with ThreadPoolExecutor(slots, thread_name_prefix="page-writer") as pool:
        while True:
            _wake.clear()
            _next_look = math.inf
            in_flight = {f for f in in_flight if not f.done()}
            pause = IDLE_SECONDS
            try:
                if len(in_flight) < slots:
                    with db_utils.connection() as conn:
                        due = db_utils.claim_due_pages(
                            conn, slots - len(in_flight), settings.prepare_max_age_seconds
                        )
                        later = db_utils.seconds_to_next_page(conn)
                    for entry in due:
                        left = _prepare_logged(entry)
                        if left is not None:
                            try:
                                in_flight.add(pool.submit(_finish_logged, entry, *left))
                            except RuntimeError:  # the interpreter is exiting; the page goes unprepared
                                return
                    if due:
                        pause = 0.0  # more may have come due while these were computed
                    elif later is not None:
                        pause = max(later, MIN_PAUSE_SECONDS)  # rows another process holds are due "now"
                if len(in_flight) >= slots:
                    pause = MIN_PAUSE_SECONDS  # look again when a slot may have freed up
            except db_utils.UNAVAILABLE as exc:
                log.warning("page writer: database unavailable (%s)", type(exc).__name__)
                pause = RETRY_SECONDS
            _next_look = time.monotonic() + pause
            _wake.wait(pause)


def _prepare_logged(entry: dict[str, Any]) -> tuple[Page, int] | None:
    try:
        return prepare(entry["user_id"], entry["page_size"], entry["category"])
    except db_utils.UNAVAILABLE:
        raise  # the writer waits and retries (the pages claimed with this one go unprepared)
    except Exception:  # the writer has no caller to tell: log it, the next request falls back
        log.exception("preparing the next page of user %s failed", entry["user_id"])
        return None


def _finish_logged(entry: dict[str, Any], page: Page, seen: int) -> None:
    try:
        finish(page, seen, entry["page_size"], entry["category"])
    except Exception:  # a thread has no caller to tell: log it, the next request falls back
        log.exception("preparing the next page of user %s failed", entry["user_id"])
