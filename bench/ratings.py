"""An explicit-ratings data set (`user item rating` a line, whitespace-separated) as a catalogue
and a population of listeners; FilmTrust's by default (Guo, Zhang and Yorke-Smith, IJCAI 2013:
35,497 ratings of 2,071 films by 1,508 users, 0.5 to 4 in steps of 0.5, ids only).

Items have no text (`Film 123`, a transcript that says nothing), so content cannot help: the
collaborative side must. The scale is read from the data. A rating from `LIKED_FROM` of the way up
the scale is liked (FilmTrust: 3 and above); each rating reaches the service as a `rate` event,
mapped linearly onto its `STARS`. The data stays where it is: only its path is given, nothing of
it is copied.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.datasets import DataSet

DEFAULT_FILE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "filmtrust" / "ratings.txt"
LIKED_FROM = 0.7  # liked: a rating >= min + LIKED_FROM * (max - min)
STARS = (1.0, 5.0)  # the service's `rate` scale: min maps to 1, max to 5
MIN_RATED = 20  # an evaluated listener rated at least this many items ...
MIN_LIKED = 5  # ... and liked at least this many


@dataclass(frozen=True)
class Film:
    external_id: str
    title: str

    def transcript(self) -> str:
        return "A film."


def read(path: Path, name: str) -> dict[str, dict[str, float]]:
    """user -> item -> rating, ids prefixed with `name` (a later line for the same pair wins)."""
    rated: dict[str, dict[str, float]] = defaultdict(dict)
    for line in path.read_text().splitlines():
        if line.strip():
            user, item, rating = line.split()[:3]
            rated[f"{name}-user-{user}"][f"{name}-{item}"] = float(rating)
    return dict(sorted(rated.items()))


def load(path: Path, name: str = "ratings", title: str | None = None) -> DataSet:
    """Every rated item (ordered by id), each user's items (best rated first), what they liked,
    and their ratings on the service's scale; `title` names it in the report (default: the file's
    name)."""
    rated = read(path, name)
    values = [r for items in rated.values() for r in items.values()]
    low, high = min(values), max(values)
    threshold = low + LIKED_FROM * (high - low) - 1e-9  # against the float error of the product

    def stars(rating: float) -> float:
        return round(STARS[0] + (STARS[1] - STARS[0]) * (rating - low) / (high - low), 4)

    number = {i: i.rsplit("-", 1)[1] for r in rated.values() for i in r}
    items = sorted(number, key=lambda i: (len(number[i]), number[i]))
    return DataSet(
        name,
        f"{title or path.name} (explicit ratings {low:g} to {high:g})",
        [Film(i, f"Film {number[i]}") for i in items],
        {u: sorted(r, key=lambda i: -r[i]) for u, r in rated.items()},
        {u: {i for i, v in r.items() if v >= threshold} for u, r in rated.items()},
        category="film",
        liked_rule=f"a rating of {min(v for v in values if v >= threshold):g} or more",
        ratings={u: {i: stars(v) for i, v in r.items()} for u, r in rated.items()},
        hits_are_liked_only=True,
        min_items=MIN_RATED,
        min_liked=MIN_LIKED,
    )
