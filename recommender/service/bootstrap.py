"""Pages for the ranker to learn from before listeners have reacted to enough suggestions: for the
bootstrap's listeners, the episodes they enjoyed that the models never saw (`model.ranker.held_out`)
are hidden and their candidates are gathered from the rest, as a request would gather them; the
hidden episodes are the hits.

Every candidate is a row, not only the few a page would show, so the ranker also learns about what
the blend would have ranked low. The content profile is the mean of the kept episodes' vectors
(the stored one has seen the hidden episodes too), and nothing is written.
"""

from __future__ import annotations

import numpy as np

from recommender import store
from recommender.model import pages as page_model
from recommender.model import ranker
from recommender.service import pages
from recommender.store.podcasts import Filters

MIN_ENJOYED = 5  # listeners who enjoyed fewer are not sampled
CANDIDATES = 40  # per page, as many as a request for 10 gathers


def pages_of(conn, listeners: int, salt: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(features, hits, page number, listener) of the candidates of up to `listeners` sampled
    listeners (`salt` changes the sample), a page's rows together."""
    rows, hits, page_of, who = [], [], [], []
    for user_id in store.ranker.sample_listeners(conn, listeners, MIN_ENJOYED, salt):
        page = hidden_page(conn, user_id)
        if page is not None:
            rows.append(page[0])
            hits.append(page[1])
            page_of += [len(rows) - 1] * len(page[1])
            who += [user_id] * len(page[1])
    if not rows:
        return np.zeros((0, len(ranker.FEATURES)), np.float32), np.zeros(0), np.zeros(0, int), []
    return np.vstack(rows), np.concatenate(hits), np.array(page_of), who


def hidden_page(conn, user_id: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The features of the listener's candidates with a share of their enjoyed episodes hidden,
    and which of them are hidden ones; None without a hidden one among the candidates."""
    user = store.users.get(conn, user_id)
    mine = store.collaborative.listener_items(conn, user_id, with_vectors=store.collaborative.LISTENER_ITEMS)
    enjoyed = [m.podcast_id for m in mine if m.enjoyed]
    if user is None or len(enjoyed) < MIN_ENJOYED:
        return None
    hidden = {pid for pid in enjoyed if ranker.held_out(user_id, pid)}
    if not hidden:
        return None
    kept = [m for m in mine if m.podcast_id not in hidden]
    vectors = [m.embedding for m in kept if m.weight > 0 and m.embedding is not None]
    profile = None
    if vectors:
        mean = np.mean(vectors, axis=0)
        profile = (mean / np.linalg.norm(mean)).astype(np.float32)
    excluded = [m.podcast_id for m in kept]
    taste = pages.taste(conn, kept)
    candidates = pages.gather(conn, user, profile, kept, taste, CANDIDATES, excluded, Filters())
    hits = np.array([c.podcast_id in hidden for c in candidates], dtype=float)
    if not hits.any():
        return None
    embeddings = np.vstack([c.embedding for c in candidates])
    return ranker.features(page_model.signals(candidates, embeddings, None, kept)), hits
