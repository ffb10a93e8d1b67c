"""A listener's profile vectors, rebuilt whenever a part of them changes: their history, their
feedback or their interest profile (`model/profiles.py` does the maths). Call inside the
transaction that changed the part; the listener's row is locked until it ends."""

from __future__ import annotations

import numpy as np

from config import get_settings
from recommender import store
from recommender.model import profiles


def refresh(conn, user_id: str) -> None:
    settings = get_settings()
    parts = store.users.profile_parts(conn, user_id)
    history_profile, profile = profiles.rebuild(
        parts, settings.feedback_half_life_days, settings.feedback_weight
    )
    store.users.save_profiles(conn, user_id, history_profile, profile)


def add_feedback(conn, user_id: str, delta: np.ndarray | None, events: int) -> None:
    """Fold a listener's new events into their decayed feedback vector and rebuild the profile,
    once. `delta` is the sum of weight x episode vector over the events (None when none of their
    episodes has a vector yet). Call with the user's row locked (`store.users.lock`)."""
    vector = None
    if delta is not None:
        stored, age = store.users.feedback_state(conn, user_id)
        vector = profiles.fold_feedback(stored, age, delta, get_settings().feedback_half_life_days)
    store.users.add_feedback(conn, user_id, vector, events)
    refresh(conn, user_id)
