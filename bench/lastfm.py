"""The HetRec 2011 Last.fm data set as a podcast catalogue and a population of listeners.

Artists stand in for episodes (their name and most used tags are the text); users' listened
artists are real behaviour. The data stays where it is (non-commercial licence): only its
path is given, nothing of it is copied into the repository.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.datasets import DataSet

DEFAULT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "hetrec2011-lastfm-2k"
TAGS_PER_ARTIST = 6
LIKED = 10  # a background listener likes their 10 most played artists


@dataclass(frozen=True)
class Artist:
    external_id: str
    title: str
    tags: tuple[str, ...]

    def transcript(self) -> str:
        return f"Tags: {', '.join(self.tags)}." if self.tags else "No tags."


def _rows(path: Path) -> list[list[str]]:
    with path.open(encoding="latin-1", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        return [row for row in reader if row]


def load_artists(data_dir: Path) -> list[Artist]:
    """Every artist with its most used tags, in id order."""
    tag_names = {tag_id: name for tag_id, name in _rows(data_dir / "tags.dat")}
    counts: dict[str, Counter] = defaultdict(Counter)
    for _user, artist, tag, *_ in _rows(data_dir / "user_taggedartists.dat"):
        counts[artist][tag_names.get(tag, "")] += 1
    artists = []
    for artist_id, name, *_ in _rows(data_dir / "artists.dat"):
        tags = tuple(t for t, _ in counts[artist_id].most_common(TAGS_PER_ARTIST) if t)
        artists.append(Artist(f"lastfm-{artist_id}", name.strip() or f"artist {artist_id}", tags))
    return artists


def load_listening(data_dir: Path) -> dict[str, list[str]]:
    """user -> listened artists (external ids), most played first."""
    plays: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for user, artist, weight in _rows(data_dir / "user_artists.dat"):
        plays[f"lastfm-user-{user}"].append((int(weight), f"lastfm-{artist}"))
    return {user: [a for _, a in sorted(items, reverse=True)] for user, items in sorted(plays.items())}


def load(data_dir: Path) -> DataSet:
    """The data set as the replay reads it: each listener's 10 most played artists are liked."""
    listening = load_listening(data_dir)
    liked = {user: set(artists[:LIKED]) for user, artists in listening.items()}
    return DataSet(
        "lastfm",
        "HetRec 2011 Last.fm (hetrec2011-lastfm-2k)",
        load_artists(data_dir),
        listening,
        liked,
        category="music",
        liked_rule=f"their {LIKED} most played artists",
    )
