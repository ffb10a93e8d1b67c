"""What each feedback event says: how far it moves a listener toward (+) or away from (-) an
episode, and what a listener's events on one episode add up to. The one table of event weights:
the feedback vector, the collaborative model, the popularity prior and a request's own scoring all
read the weights stored with the events (`event_weight`) and net them by `net_engagement`'s rule.

| event | weight |
|---|---|
| like, complete | +1 |
| listen | +0.6 x progress (0 to 1; half when not given) |
| click | +0.2 |
| rate | (value - 3) / 2: 1 star -1, 2 stars -0.5, 3 neutral, 5 stars +1 |
| skip | -0.3 |
| dislike | -1 |
| a listen in the stated history (`listened_podcast_ids`) | +1 (implicit) |
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import NamedTuple

import numpy as np

EVENT_WEIGHTS = {"click": 0.2, "complete": 1.0, "like": 1.0, "skip": -0.3, "dislike": -1.0}
# What the listener said of the episode, rather than did with it: the latest one decides.
JUDGEMENTS = ("like", "dislike", "rate")
# What says they played it (a stated listen too): on ratings data, who rated a film watched it.
CONSUMPTIONS = ("listen", "complete", "like", "rate")
# What the models can learn from (`signal_engagement`), chosen per deployment by the refresh.
SIGNALS = ("judgement", "consumption")


def event_weight(event: str, value: float | None) -> float:
    """A listen weighs its progress (0 to 1, half when unknown); a rating 1 to 5 weighs -1 to +1."""
    if event == "listen":
        return 0.6 * (0.5 if value is None else value)
    if event == "rate":
        return 0.0 if value is None else (value - 3) / 2  # 1 → -1, 3 → 0, 5 → +1
    return EVENT_WEIGHTS[event]


class PairEvent(NamedTuple):
    """One event of a listener on an episode, as they are netted and faded."""

    weight: float
    judged: bool  # a like, dislike or rating (`JUDGEMENTS`)
    at: datetime  # when it happened (`occurred_at`)


def net_engagement(events: Iterable[tuple[float, bool]]) -> float:
    """A listener's (weight, is a judgement) events on one episode, oldest first, netted: their
    latest judgement if they gave one, whatever they did around it (a listen, then 1 star: -1, not
    the listen's +0.6 less a little; 3 stars: neutral), else the sum of what they did."""
    weights = list(events)
    judged = [weight for weight, is_judgement in weights if is_judgement]
    return judged[-1] if judged else sum(weight for weight, _ in weights)


def faded_engagement(events: Sequence[PairEvent], now: datetime, half_life_days: float) -> float:
    """What a listener's events on one episode weigh in their feedback at `now`: the net
    engagement of the events in the order they happened, halving every `half_life_days` since
    the latest of them. A like imported from a year ago weighs 2^(-365/30) of a fresh one."""
    if not events:
        return 0.0
    ordered = sorted(events, key=lambda event: event.at)  # stable: ties keep the order they were stored
    age_days = max((now - ordered[-1].at).total_seconds(), 0.0) / 86400
    net = net_engagement((event.weight, event.judged) for event in ordered)
    return net * 0.5 ** (age_days / half_life_days)


def signal_engagement(net: np.ndarray, consumed: np.ndarray, signal: str) -> np.ndarray:
    """What the models learn from a listener's net engagement with an episode. `judgement`: the
    net itself (3 stars neutral, 2 against). `consumption`: a played episode counts for, at
    least half as much as a loved one whatever its rating (1 star +0.5, 5 stars +1: on ratings
    data, having rated a film says more about what else they will watch than the stars do);
    what they did not play (a skip, a dislike, a click) keeps its net."""
    if signal == "judgement":
        return net
    return np.where(consumed, (1 + np.maximum(net, 0)) / 2, net)
