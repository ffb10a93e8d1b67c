"""Text utilities of the AI providers: content words, the check of generated text, the offline
extractive summary and keyword profile."""

from __future__ import annotations

import re
from collections import Counter

from recommender.ai.prompts import PROFILE_MAX_CHARS, SUMMARY_MAX_CHARS

MIN_GENERATED_CHARS = 10

# What generated text shown to listeners must not hold: markup, links, or words addressed to a
# model or to the reader (the marks of a prompt injection that got through).
UNFIT = re.compile(
    r"</?[a-z!?]|&lt;|\]\(|```|\bhttps?:|\bwww\.|\b[\w-]+\.(?:com|net|org|io|ly|xyz|info|example)\b"
    r"|\b(?:ignore|disregard|forget)\s+(?:(?:all|any|the|your|previous|prior|above|earlier|system)\s+)*"
    r"(?:instructions?|prompts?|directions)\b|\bnew instructions\b|\bsystem prompt\b"
    r"|\b(?:as|i am|i'm) an? (?:ai|(?:large )?language model)\b|\bclick here\b",
    re.IGNORECASE,
)


def presentable(text: str, max_chars: int) -> bool:
    """Whether generated text may be stored and shown: MIN_GENERATED_CHARS to `max_chars` long,
    without markup, links or words addressed to the model or the reader."""
    return MIN_GENERATED_CHARS <= len(text) <= max_chars and not UNFIT.search(text)


def clip(text: str, limit: int) -> str:
    """`text` on one line, cut at a word to at most `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


STOPWORDS = frozenset(
    """
    a about above after again all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each episode few for from further
    get got had has have having he her here hers him his how i if in into is it its itself just
    like me more most my no nor not now of off on once only or other our ours out over own podcast
    really same she should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom why will
    with would you your yours today going know think talk week show across along around among every
    still within without something things tags
    """.split()  # noqa: SIM905 (a list of words reads best as words)
)


def content_words(text: str) -> list[str]:
    """The words of `text` that carry meaning (lower case, stop words left out), in order."""
    return [w for w in re.findall(r"[a-z][a-z'-]+", text.lower()) if w not in STOPWORDS]


def extractive_summary(text: str, max_sentences: int = 2) -> str:
    """The sentences whose words are most frequent in the text, in their original order;
    sentences with markup, links or words addressed to a model are never chosen."""
    split = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    sentences = [s.strip() for s in split if s.strip() and not UNFIT.search(s)]
    if len(sentences) <= max_sentences:
        return clip(" ".join(sentences), SUMMARY_MAX_CHARS)
    frequency = Counter(content_words(text))
    top = max(frequency.values(), default=1)

    def score(sentence: str) -> float:
        words = content_words(sentence)
        return sum(frequency[w] / top for w in words) / (len(words) ** 0.5 or 1)

    best = sorted(range(len(sentences)), key=lambda i: score(sentences[i]), reverse=True)
    chosen = sorted(best[:max_sentences])
    return clip(" ".join(sentences[i] for i in chosen), SUMMARY_MAX_CHARS)


def keyword_profile(history: str, liked: list[str]) -> str:
    """The offline interest profile: the most frequent content words, and what they engaged with."""
    keywords = [w for w, _ in Counter(content_words(" ".join([history, *liked]))).most_common(8)]
    parts = [f"Enjoys {', '.join(keywords)}." if keywords else ""]
    if liked:
        parts.append("Engaged with: " + "; ".join(liked[:6]) + ".")
    return clip(" ".join(p for p in parts if p), PROFILE_MAX_CHARS)
