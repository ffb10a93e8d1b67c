"""A listener's profile vectors: the stated history and listened episodes, the LLM-written
interest profile and the decayed feedback vector, combined."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class ProfileParts:
    """What a listener's profile vectors are built from, as stored."""

    history_embedding: np.ndarray | None  # the vector of their stated history text
    listened_mean: np.ndarray | None  # the mean vector of the episodes they listened to
    interest_embedding: np.ndarray | None  # the vector of the LLM-written interest profile
    feedback_vector: np.ndarray | None  # the weighted sum of the episodes they reacted to ...
    feedback_age_seconds: float | None  # ... decayed since it was stored this long ago


def combine(*vectors: np.ndarray | None) -> np.ndarray | None:
    """The normalized sum of the given vectors, each normalized first so each counts equally."""
    present = [v / n for v in vectors if v is not None and (n := np.linalg.norm(v)) > 0]
    if not present:
        return None
    return unit(np.sum(present, axis=0))


def unit(vector: np.ndarray) -> np.ndarray | None:
    norm = np.linalg.norm(vector)
    return (vector / norm).astype(np.float32) if norm > 0 else None


def decayed(vector: np.ndarray | None, age_seconds: float | None, half_life_days: float) -> np.ndarray | None:
    """Feedback fades: its weight halves every `half_life_days`."""
    if vector is None:
        return None
    return vector * 0.5 ** (float(age_seconds or 0) / (half_life_days * 86400))


def learned_profile(
    history_profile: np.ndarray | None,
    interest: np.ndarray | None,
    feedback: np.ndarray | None,
    feedback_weight: float,
) -> np.ndarray | None:
    """What the user is into: stated history and the generated interest profile (unit vectors),
    plus the feedback vector, whose length grows with consistent feedback and which points
    toward liked episodes and away from disliked ones."""
    base = combine(history_profile, interest)
    if feedback is None:
        return base
    total = feedback_weight * feedback + (base if base is not None else 0)
    return unit(total)


def rebuild(
    parts: ProfileParts, half_life_days: float, feedback_weight: float
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(history profile, learned profile): the first is the stated history with the listened
    episodes (what the `history_only` variant ranks by), the second adds the interest profile
    and the decayed feedback (what the learning `loop` variant ranks by)."""
    history_profile = combine(parts.history_embedding, parts.listened_mean)
    feedback = decayed(parts.feedback_vector, parts.feedback_age_seconds, half_life_days)
    return history_profile, learned_profile(
        history_profile, parts.interest_embedding, feedback, feedback_weight
    )


def fold_feedback(
    stored: np.ndarray | None, age_seconds: float | None, delta: np.ndarray, half_life_days: float
) -> np.ndarray:
    """The feedback vector after new events: the stored one decayed to now, plus their `delta`."""
    current = decayed(stored, age_seconds, half_life_days)
    return delta if current is None else current + delta
