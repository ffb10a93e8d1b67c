"""The models' timer: the ranker (a second or less) and then the collaborative model (co-engagement
neighbours and factors), each when enough new events arrived, on a thread of their own: enrichment
and requests never wait on a training.

A training runs in a child process of its own, started when one is due and ended with it: what it
reads and builds (the interactions, EASE's dense matrices, iALS, LightGBM) and the libraries it
imports go back to the system when it ends. The serving process that runs the timers stays the
size of the others (bench/SOAK_RESULTS.md); trained in it, in a soak of the sample catalogue it
grew from 110 to 340 MiB and peaked at 482 during trainings, and a training at 10M events holds
766 MiB more.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import db_utils
from config import LOG_FORMAT, get_settings
from recommender.service.database import require_database
from recommender.worker import collaborative, ranker


def train_models() -> bool:
    """Whatever is due, in a child process; returns whether anything was trained. The checks that
    nothing is due are cheap queries, made here, so a quiet deployment starts no process."""
    require_database()
    if not (ranker.due() or collaborative.due()):
        return False
    url = db_utils.database_url(get_settings())  # the embedded one is started: the child joins it
    with ProcessPoolExecutor(
        1, mp_context=get_context("spawn"), initializer=_child, initargs=(url, logging.getLogger().level)
    ) as pool:
        trained, ranker.tried_at = pool.submit(train_pass, ranker.tried_at).result()
    return trained


def _child(database_url: str, log_level: int) -> None:
    os.environ["DATABASE_URL"] = database_url
    logging.basicConfig(level=log_level, format=LOG_FORMAT)


def train_pass(tried_at: int) -> tuple[bool, int]:
    """Train what is due (in the child): whether anything was, and the ranker's `tried_at` after.
    A ranker that fails to train still lets the collaborative model refresh (its error is raised
    after, for the timer to log)."""
    require_database()  # a no-op migration that sets up this process's vector types
    ranker.tried_at = tried_at
    try:
        ranked = ranker.train_if_due()
    finally:
        refreshed = collaborative.refresh_if_due()
    return refreshed or ranked, ranker.tried_at
