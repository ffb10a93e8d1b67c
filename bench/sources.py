"""The data sets `python -m bench.real_replay --data-set NAME` replays, and where each is read from."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NamedTuple

from bench import lastfm, ratings
from bench.datasets import DataSet


class Source(NamedTuple):
    """How to load a data set, its default `--data` (None: it must be given), and `--evaluated`."""

    load: Callable[[Path], DataSet]
    path: Path | None
    evaluated: int


DATA_SETS = {  # in the order `make bench-real` runs them
    "lastfm": Source(lastfm.load, lastfm.DEFAULT_DIR, 200),
    "filmtrust": Source(partial(ratings.load, name="filmtrust", title="FilmTrust"), ratings.DEFAULT_FILE, 60),
    "ratings": Source(ratings.load, None, 60),  # any `user item rating` file
}
