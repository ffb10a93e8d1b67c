"""What the fake OpenAI server answers: deterministic embeddings (words hashed into a vector, so
texts that share words are close), summaries, reasons and labels made from the prompt's own
JSON data. No model, no network."""

from __future__ import annotations

import hashlib
import json
import math
import re
from functools import lru_cache
from typing import Any

JsonDict = dict[str, Any]

_WORD = re.compile(r"[^\W\d_]+")
# Words shorter than _MIN_WORD_LEN are dropped anyway, so only longer ones are listed.
_STOPWORDS = frozenset(
    {
        "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "was",
        "were", "with", "this", "that", "these", "those", "from", "have", "has", "had",
        "its", "our", "your", "his", "her", "she", "they", "them", "their", "what",
        "which", "who", "whom", "will", "would", "there", "then", "than", "into",
        "about", "also", "been", "when", "where", "how", "why", "more", "most", "some",
        "such", "only", "other", "very", "just", "over", "out",
    }
)  # fmt: skip
_MIN_WORD_LEN = 3
_SUMMARY_SENTENCES = 2
_SUMMARY_MAX_CHARS = 300


@lru_cache(maxsize=65536)
def word_hash(word: str) -> int:
    """Stable 64-bit hash of a word (independent of PYTHONHASHSEED)."""
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def embed_text(text: str, dimensions: int) -> list[float]:
    """Feature-hashing bag-of-words embedding, L2-normalised."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        if len(word) < _MIN_WORD_LEN or word in _STOPWORDS:
            continue
        h = word_hash(word)
        vector[h % dimensions] += 1.0 if (h >> 63) & 1 else -1.0
    if not any(vector):
        # No usable words: a fixed pseudo-random direction derived from the raw text.
        digest = hashlib.shake_256(text.encode()).digest(dimensions)
        vector = [b - 127.5 for b in digest]
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


def message_text(content: object) -> str:
    """Text of a chat message content (string or list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def parse_items(text: str) -> list[JsonDict]:
    """First JSON object with an ``items`` list embedded in ``text`` (lenient)."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            obj, _ = decoder.raw_decode(text, start)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("items"), list):
            return [
                item
                for item in obj["items"]
                if isinstance(item, dict) and "podcast_id" in item and "title" in item
            ]
        start = text.find("{", start + 1)
    return []


def episodes(text: str) -> list[JsonDict]:
    """The ``episodes`` of a batched summary request (a JSON object message), else []."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    episodes = data.get("episodes") if isinstance(data, dict) else None
    return [e for e in episodes if isinstance(e, dict) and "id" in e] if isinstance(episodes, list) else []


def data_text(text: str) -> str:
    """The strings of a JSON object message (a fenced prompt's data), else ``text`` itself."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict):
        return text
    values = [v if isinstance(v, list) else [v] for v in data.values()]
    return " ".join(str(v) for vs in values for v in vs if isinstance(v, str) and v)


def summarize(text: str) -> str:
    """First two sentences of ``text`` (at most 300 chars), prefixed."""
    sentences = " ".join(text.split()).split(". ")[:_SUMMARY_SENTENCES]
    return "Summary: " + ". ".join(sentences)[:_SUMMARY_MAX_CHARS]


def count_tokens(text: str) -> int:
    """Crude whitespace token count."""
    return len(text.split())
