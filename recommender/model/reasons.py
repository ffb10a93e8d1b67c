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
    kind: Literal[
        "co_engagement", "close_to", "your_interests", "popular", "your_history", "new",
        "also_enjoyed", "same_subject",  # "more like this": the episode it was asked for is `title`
    ]  # fmt: skip
    podcast_id: int  # co_engagement, close_to: the listener's episode ...
    title: str  # ... and its title
    words: list[str]  # your_interests: words their history shares with the suggestion
    listeners: int  # popular: how many enjoyed it lately
    category: str  # your_history, new: the suggestion's category, when it has one


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
    category = {"category": candidate.category} if candidate.category else {}
    if candidate.similarity is not None and history_words:
        return {"kind": "your_history", **category}
    return {"kind": "new", **category}


# Each kind of evidence said a few ways, so that a page of one kind does not read as one template
# repeated: {title}, {words}, {category} and {listeners} are the evidence's own.
SENTENCES: dict[str, tuple[str, ...]] = {
    "co_engagement": (
        "Listeners who enjoyed “{title}”, as you did, also enjoyed this.",
        "People who liked “{title}” went on to this one.",
        "A favourite among listeners of “{title}”, which you enjoyed.",
    ),
    "close_to": (
        "Close in subject to “{title}”, one of your episodes.",
        "If you enjoyed “{title}”, this covers similar ground.",
        "Along the same lines as “{title}”.",
    ),
    "your_interests": (
        "Your listening history mentions {words}, and so does this.",
        "About {words}, which your history mentions.",
        "You listen for {words}: this episode is about them too.",
    ),
    "popular_one": ("Another listener enjoyed this lately.", "Enjoyed lately by one listener."),
    "popular": (
        "Popular lately: {listeners} listeners enjoyed it.",
        "{listeners} listeners enjoyed this lately.",
    ),
    "your_history_category": (
        "A {category} episode close to what your history describes.",
        "From {category}, near the interests your history describes.",
    ),
    "your_history": ("Close to the interests your listening history describes.",),
    "new_category": ("New in {category}.", "Just added to {category}."),
    "new": ("New in the catalogue.",),
    "also_enjoyed": (
        "Listeners who enjoyed “{title}” also enjoyed this.",
        "Often enjoyed by the listeners of “{title}”.",
    ),
    "same_subject": ("Close in subject to “{title}”.", "Covers ground similar to “{title}”."),
}


def sentence(evidence: Evidence, podcast_id: int) -> str:
    """The evidence as one plain sentence: the offline reason, and the LLM's ground. The wording
    varies with the episode (`podcast_id`), the same episode always getting the same one."""
    kind = evidence["kind"]
    if kind == "popular" and evidence["listeners"] == 1:
        kind = "popular_one"
    elif kind in ("your_history", "new") and evidence.get("category"):
        kind = f"{kind}_category"
    wordings = SENTENCES[kind]
    fields = {**evidence, "words": " and ".join(evidence.get("words", []))}
    return wordings[podcast_id % len(wordings)].format(**fields)


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
