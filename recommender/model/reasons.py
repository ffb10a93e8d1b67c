"""Why each suggestion was made: the evidence of the signal that ranked it, and reasons
written from that evidence (by the LLM, or as the evidence sentence itself offline).

Evidence is always something true about the listener or the catalogue: an episode of theirs
the suggestion is close to, an episode of theirs that listeners who enjoyed it also enjoyed,
words their own history shares with it, or how many listeners enjoyed it lately.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypedDict

import numpy as np

from recommender.ai.text import content_words

if TYPE_CHECKING:
    from recommender.model.pages import Candidate, Engagement

CLOSE_ENOUGH = 0.3  # cosine above which "close to an episode of yours" is worth saying


class Evidence(TypedDict, total=False):
    kind: Literal["co_engagement", "close_to", "your_interests", "popular", "your_history", "new"]
    podcast_id: int  # co_engagement, close_to: the listener's episode ...
    title: str  # ... and its title
    words: list[str]  # your_interests: words their history shares with the suggestion
    listeners: int  # popular: how many enjoyed it lately


def evidence(candidate: Candidate, positives: list[Engagement], history_words: set[str]) -> Evidence:
    """The strongest true statement about why `candidate` was ranked for this listener.

    `positives`: the listener's episodes with positive engagement (title, and vector for the
    strongest few); `history_words`: content words of their stated history and interest profile."""
    titles = {p.podcast_id: p.title for p in positives}
    because_of = candidate.because_of
    if candidate.collaborative and because_of in titles:
        return {"kind": "co_engagement", "podcast_id": because_of, "title": titles[because_of]}
    with_vectors = [p for p in positives if p.embedding is not None]
    if candidate.embedding is not None and with_vectors:
        closeness = np.vstack([p.embedding for p in with_vectors]) @ candidate.embedding
        best = int(np.argmax(closeness))
        if closeness[best] >= CLOSE_ENOUGH:
            closest = with_vectors[best]
            return {"kind": "close_to", "podcast_id": closest.podcast_id, "title": closest.title}
    text = f"{candidate.title} {candidate.summary or ''}"
    shared = [w for w in dict.fromkeys(content_words(text)) if w in history_words and len(w) > 3]
    if shared:
        return {"kind": "your_interests", "words": shared[:2]}
    if candidate.listeners:
        return {"kind": "popular", "listeners": int(candidate.listeners)}
    if candidate.similarity is not None and history_words:
        return {"kind": "your_history"}
    return {"kind": "new"}


def sentence(evidence: Evidence) -> str:
    """The evidence as one plain sentence: the offline reason, and the LLM's ground."""
    kind = evidence["kind"]
    if kind == "co_engagement":
        return f"Listeners who enjoyed “{evidence['title']}”, as you did, also enjoyed this."
    if kind == "close_to":
        return f"Close in subject to “{evidence['title']}”, one of your episodes."
    if kind == "your_interests":
        return f"Your listening history mentions {' and '.join(evidence['words'])}, and so does this."
    if kind == "popular":
        count = evidence["listeners"]
        return f"Popular lately: {count} listener{'s' if count != 1 else ''} enjoyed it."
    if kind == "your_history":
        return "Close to the interests your listening history describes."
    return "New in the catalogue."


def evidence_key(evidence: Evidence) -> str:
    """What a written reason rests on: the kind of evidence and what it names. A reason stays
    valid while its item's evidence has the same key (counts that drift, such as how many
    listeners enjoyed it, are left out)."""
    named = evidence.get("podcast_id") or ",".join(evidence.get("words", []))
    return f"{evidence['kind']}:{named}" if named else evidence["kind"]


def listener_profile(interest_profile: str | None, history: str | None, positives: list[Engagement]) -> str:
    """The text the reason writer sees about the listener."""
    parts = [interest_profile or "", (history or "")[:1500]]
    if positives:
        parts.append("Episodes they enjoyed: " + "; ".join(p.title for p in positives[:10]))
    return "\n".join(p for p in parts if p)
