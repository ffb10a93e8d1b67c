"""What the real-data replay needs of a data set, whichever it is: a catalogue, who engaged with
what, what counts as liked, and a fixed-seed split into evaluated listeners and the background.

`bench/lastfm.py` (listening with play counts) and `bench/ratings.py` (explicit ratings) each load
one. Last.fm: every listened artist is a hit, a background listener likes their 10 most played.
Ratings: a hit is a held-out item the listener liked (rated high); a held-out item they rated
lower is disliked when shown; `rate` events carry the ratings themselves to the service.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Protocol


class Item(Protocol):
    """An episode of the replay's catalogue."""

    external_id: str
    title: str

    def transcript(self) -> str: ...


@dataclass(frozen=True)
class Split:
    background: dict[str, list[str]]  # user -> items (external ids), most engaged first
    seeds: dict[str, list[str]]  # evaluated user -> the items they start from
    held_out: dict[str, set[str]]  # evaluated user -> the items to find (the hits)
    liked: dict[str, set[str]]  # every user -> the items a baseline weighs as liked
    disliked: dict[str, set[str]] = field(default_factory=dict)  # evaluated user -> held out, not liked

    def reaction(self, user: str, item: str) -> str:
        """The feedback on a page item: a hit is liked, a held-out item the listener rated low
        disliked, anything else skipped."""
        if item in self.held_out[user]:
            return "like"
        return "dislike" if item in self.disliked.get(user, set()) else "skip"


@dataclass(frozen=True)
class DataSet:
    name: str  # as `--data-set` names it
    title: str  # as the report names it
    items: list[Item]
    listening: dict[str, list[str]]  # user -> items, most engaged first
    liked: dict[str, set[str]]  # user -> their liked items
    category: str  # the episodes'
    liked_rule: str  # what a background listener likes, in words
    ratings: dict[str, dict[str, float]] | None = None  # user -> item -> the `rate` value (1 to 5)
    hits_are_liked_only: bool = False  # else every held-out item is a hit
    min_items: int = 20  # an evaluated listener engaged with at least this many items ...
    min_liked: int = 0  # ... and liked at least this many

    def events(self, user: str, items: list[str], ids: dict[str, int]) -> list[dict[str, Any]]:
        """What `user` said of `items` beyond listening, as `POST /api/feedback` takes it: each
        rating as a `rate` event where the data set has ratings, else a `like` of each liked item.
        `ids`: external id -> podcast id; every event has an `event_id`, so posting is idempotent."""
        if self.ratings is not None:
            return [
                {
                    "user_id": user,
                    "podcast_id": ids[i],
                    "event": "rate",
                    "value": self.ratings[user][i],
                    "event_id": f"real-rate-{user}-{i}",
                }
                for i in items
            ]
        return [
            {"user_id": user, "podcast_id": ids[i], "event": "like", "event_id": f"real-bg-{user}-{i}"}
            for i in items
            if i in self.liked[user]
        ]

    def split(
        self, evaluated: int, seeds: int, seed: int, among: dict[str, list[str]] | None = None
    ) -> Split:
        """`evaluated` eligible listeners of `among` (default: everyone) start from `seeds` random
        items of theirs and must find the rest; everyone else in `among` is the background."""
        listening = self.listening if among is None else among
        rng = random.Random(seed)
        eligible = [
            u
            for u, items in listening.items()
            if len(items) >= self.min_items and len(self.liked[u]) >= self.min_liked
        ]
        chosen = set(rng.sample(eligible, evaluated))
        start, held_out, disliked = {}, {}, {}
        for user in sorted(chosen):
            items = list(listening[user])
            rng.shuffle(items)
            start[user], rest = items[:seeds], set(items[seeds:])
            held_out[user] = rest & self.liked[user] if self.hits_are_liked_only else rest
            if self.hits_are_liked_only:
                disliked[user] = rest - self.liked[user]
        background = {u: items for u, items in listening.items() if u not in chosen}
        return Split(background, start, held_out, self.liked, disliked)
