"""The synthetic world of the feedback-loop simulation: topics, episodes and listeners.

Each topic has its own vocabulary; every episode mixes its topic's words with generic podcast
words and a few words of one other topic, as real episodes touch neighbouring subjects.
Listeners have hidden tastes over the topics (liked, disliked, neutral) and a stated listening
history that is noisy and partial: it names one liked and one disliked topic, never the other
liked one. Everything is drawn from a seeded `random.Random`, so a seed rebuilds the same world.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

TOPICS: dict[str, tuple[str, ...]] = {
    "astronomy": (
        "galaxy", "nebula", "telescope", "orbit", "comet", "asteroid", "supernova", "planet", "moon",
        "eclipse", "cosmos", "starlight", "quasar", "pulsar", "gravity", "meteor", "constellation",
        "observatory", "exoplanet", "rocket", "astronaut", "lunar", "solar", "spacecraft", "cosmic",
        "redshift", "blackhole", "jupiter", "saturn", "mars", "venus", "neptune", "satellite",
        "spectrum", "radiotelescope", "milkyway", "stargazing", "darkmatter", "launchpad", "aurora",
    ),
    "cooking": (
        "recipe", "kitchen", "oven", "flour", "butter", "garlic", "sauce", "simmer", "roast", "bake",
        "dough", "pastry", "spice", "chef", "knife", "skillet", "braise", "broth", "noodles", "saffron",
        "marinade", "grill", "dessert", "caramel", "vinegar", "herbs", "basil", "sourdough", "ferment",
        "dumpling", "stew", "omelette", "lentils", "chutney", "risotto", "custard", "whisk", "pantry",
        "seasoning", "tasting",
    ),
    "history": (
        "empire", "dynasty", "medieval", "pharaoh", "castle", "siege", "chronicle", "ancient", "emperor",
        "revolution", "monarchy", "crusade", "archive", "colonial", "treaty", "legion", "rome", "viking",
        "samurai", "manuscript", "archaeology", "ruins", "tribune", "senate", "kingdom", "feudal",
        "renaissance", "byzantine", "carthage", "sparta", "papyrus", "dynastic", "conquest", "fortress",
        "artifact", "excavation", "chariot", "centurion", "regent", "abbey",
    ),
    "football": (
        "striker", "goalkeeper", "penalty", "midfield", "league", "derby", "transfer", "stadium",
        "referee", "offside", "tackle", "corner", "freekick", "dribble", "header", "defender", "captain",
        "champions", "relegation", "fixture", "kickoff", "halftime", "scoreline", "winger", "pitch",
        "manager", "tactics", "pressing", "counterattack", "trophy", "supporters", "ultras", "volley",
        "hattrick", "sweeper", "fullback", "playmaker", "standings", "cupfinal", "substitute",
    ),
    "finance": (
        "stocks", "bonds", "dividend", "portfolio", "inflation", "interest", "mortgage", "budget",
        "savings", "pension", "equity", "hedgefund", "broker", "index", "etf", "crypto", "ledger",
        "accounting", "recession", "valuation", "earnings", "startup", "venture", "liquidity", "credit",
        "debt", "taxes", "invoice", "retirement", "compound", "yield", "treasury", "banking", "payroll",
        "audit", "shareholder", "merger", "revenue", "capital", "fintech",
    ),
    "gardening": (
        "compost", "seedling", "soil", "pruning", "orchard", "greenhouse", "tomato", "mulch", "weeds",
        "perennial", "bulbs", "roses", "hedge", "watering", "allotment", "raised", "beds", "harvest",
        "sapling", "fertilizer", "trellis", "vines", "shrubs", "lawn", "moss", "seeds", "potting",
        "cuttings", "blossom", "pollinator", "bees", "meadow", "wildflower", "irrigation", "hoe",
        "rake", "spade", "foliage", "shade", "hardy",
    ),
    "music": (
        "guitar", "melody", "chord", "album", "vinyl", "drummer", "bassline", "orchestra", "symphony",
        "jazz", "blues", "rhythm", "harmony", "lyrics", "songwriter", "studio", "producer", "concert",
        "tour", "setlist", "piano", "violin", "saxophone", "opera", "choir", "tempo", "riff", "remix",
        "synthesizer", "ballad", "encore", "acoustic", "bandmate", "mixtape", "record", "headliner",
        "soundcheck", "conductor", "sonata", "falsetto",
    ),
    "truecrime": (
        "detective", "murder", "suspect", "alibi", "forensic", "homicide", "evidence", "verdict", "jury",
        "trial", "prosecutor", "confession", "witness", "fingerprint", "kidnapping", "heist", "fraud",
        "coldcase", "interrogation", "autopsy", "motive", "culprit", "investigator", "crimescene",
        "warrant", "burglary", "smuggling", "ransom", "fugitive", "manhunt", "courtroom", "testimony",
        "sheriff", "inmate", "parole", "cartel", "arson", "conviction", "acquittal", "whodunit",
    ),
}  # fmt: skip

GENERIC = (
    "episode", "guest", "host", "interview", "story", "conversation", "listeners", "week", "talk",
    "season", "today", "people", "world", "life", "questions", "journey", "explain", "discuss",
    "listen", "show", "series", "experts", "surprising", "everyday", "behind", "scenes", "deep", "dive",
    "beginners", "guide", "tips", "lessons", "favourite", "moments", "insights", "chat", "friends",
    "weekly", "special", "part", "stories", "curious", "minds", "learn", "future", "past", "big",
    "ideas", "inside", "things", "ways", "mistakes", "secrets", "truth", "history", "new", "classic",
    "honest", "simple", "practical",
)  # fmt: skip


@dataclass(frozen=True)
class Listener:
    """A synthetic user: hidden tastes (never sent) and the stated history (sent once).

    The first liked and the first disliked topic are the ones the history names."""

    user_id: str
    liked: tuple[str, str]
    disliked: tuple[str, str]
    history: str

    def taste(self, topic: str) -> str:
        """'liked', 'disliked' or 'neutral'."""
        if topic in self.liked:
            return "liked"
        return "disliked" if topic in self.disliked else "neutral"


def _sentence(rng: random.Random, words: list[str]) -> str:
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


def episode(rng: random.Random, topic: str, number: int) -> dict[str, str]:
    """One episode of `topic`: mostly its vocabulary, some generic words, a little of one other topic."""
    own, other = TOPICS[topic], TOPICS[rng.choice([t for t in TOPICS if t != topic])]
    title = f"{' '.join(rng.sample(own, 3)).title()}: {rng.choice(GENERIC)} {rng.choice(GENERIC)}"
    description = _sentence(rng, rng.sample(own, 6) + rng.sample(GENERIC, 4) + rng.sample(other, 2))
    transcript = " ".join(
        _sentence(rng, rng.sample(own, 5) + rng.sample(GENERIC, 5) + rng.sample(other, 2)) for _ in range(8)
    )
    return {
        "external_id": f"loop-{topic}-{number:03d}",
        "title": title,
        "description": description,
        "transcript": transcript,
        "category": topic,
    }


def catalog(rng: random.Random, per_topic: int) -> list[dict[str, str]]:
    return [episode(rng, topic, n) for topic in TOPICS for n in range(per_topic)]


def listener(rng: random.Random, number: int) -> Listener:
    """Two liked and two disliked topics; the stated history names one of each, plus filler."""
    topics = rng.sample(sorted(TOPICS), 4)
    liked, disliked = topics[:2], topics[2:]
    words = rng.sample(TOPICS[liked[0]], 4) + rng.sample(TOPICS[disliked[0]], 4) + rng.sample(GENERIC, 4)
    rng.shuffle(words)
    history = f"I have listened to shows about {', '.join(words[:-1])} and {words[-1]}"
    return Listener(f"sim-{number:03d}", (liked[0], liked[1]), (disliked[0], disliked[1]), history)


def listeners(rng: random.Random, count: int) -> list[Listener]:
    return [listener(rng, n) for n in range(count)]
