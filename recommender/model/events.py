"""What each feedback event says: how far it moves a listener toward (+) or away from (-) an episode."""

from __future__ import annotations

EVENT_WEIGHTS = {"click": 0.2, "complete": 1.0, "like": 1.0, "skip": -0.3, "dislike": -1.0}


def event_weight(event: str, value: float | None) -> float:
    """A listen weighs its progress (0 to 1, half when unknown); a rating 1 to 5 weighs -1 to +1."""
    if event == "listen":
        return 0.6 * (0.5 if value is None else value)
    if event == "rate":
        return 0.0 if value is None else (value - 3) / 2  # 1 → -1, 3 → 0, 5 → +1
    return EVENT_WEIGHTS[event]
