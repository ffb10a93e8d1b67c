"""Generated text stored before the check of generated text last changed is checked again, a
batch of each kind per worker pass, and what fails it is replaced: a summary by the extractive
summary of its transcript, a written reason and a topic label are forgotten (written again when
needed), an interest profile is forgotten and written again."""

from __future__ import annotations

import logging

import db_utils
from config import get_settings
from recommender import store
from recommender.ai.prompts import LABEL_MAX_CHARS, PROFILE_MAX_CHARS, REASON_MAX_CHARS, SUMMARY_MAX_CHARS
from recommender.ai.text import extractive_summary, presentable
from recommender.service import profiles
from recommender.store.generated import BATCHES, START

log = logging.getLogger(__name__)

CHECK = "2"  # the version of `ai.text.refused`: change it and stored text is checked again
LONGEST = {
    "summaries": SUMMARY_MAX_CHARS,
    "reasons": REASON_MAX_CHARS,
    "interest_profiles": PROFILE_MAX_CHARS,
    "topic_labels": LABEL_MAX_CHARS,
}


def recheck_stored(batch_size: int = 500) -> int:
    """One batch of each kind not yet checked with CHECK; returns how many texts it checked."""
    with db_utils.connection() as conn:
        state = store.generated.progress(conn)
    if state is None or state.get("check") != CHECK:
        state = {"check": CHECK, **START}
    checked = 0
    for kind in BATCHES:
        after = state[kind]
        if after is None:
            continue
        for attempt in db_utils.transactions():
            with attempt as conn:
                rows = store.generated.batch(conn, kind, after, batch_size)
                failing = [row for row in rows if not presentable(row[1], LONGEST[kind], min_chars=1)]
                if failing:
                    log.warning("%d stored %s failed the check of generated text", len(failing), kind)
                    _replace(conn, kind, failing)
                state[kind] = rows[-1][0] if len(rows) == batch_size else None
                store.generated.save_progress(conn, state)
        checked += len(rows)
    return checked


def _replace(conn, kind: str, failing: list[tuple]) -> None:
    keys = [key for key, _, _ in failing]
    if kind == "summaries":
        offline = {int(key): extractive_summary(transcript or "") for key, _, transcript in failing}
        store.generated.replace_summaries(conn, offline)
    elif kind == "reasons":
        store.generated.drop_reasons(conn, keys)
    elif kind == "interest_profiles":
        store.users.lock(conn, keys)
        store.generated.drop_interest_profiles(conn, keys, get_settings().profile_refresh_events)
        for user_id in sorted(keys):
            profiles.refresh(conn, user_id)
    else:
        store.generated.drop_topic_labels(conn, keys)
