-- Reasons written ahead of the request that shows them (recommender.prepare_pages).

-- The LLM's reason for showing an episode to a listener, reused while the evidence it was
-- written from still holds (and the listener's profile text has not changed since).
CREATE TABLE reasons (
    user_id     text   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    podcast_id  bigint NOT NULL REFERENCES podcasts (id) ON DELETE CASCADE,
    evidence    text   NOT NULL,                    -- reasons.evidence_key of its evidence
    reason      text   NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, podcast_id)
);

-- Listeners whose next page is to be prepared: set by their activity (a served page, feedback,
-- a history update), claimed by the writer once due, dropped when it has waited too long.
CREATE TABLE pages_due (
    user_id    text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    due_at     timestamptz NOT NULL,
    page_size  integer NOT NULL,
    category   text
);
CREATE INDEX pages_due_due_at ON pages_due (due_at);

-- LLM calls by day and purpose, so what the loop spends can be read against what it serves.
CREATE TABLE ai_calls (
    day      date   NOT NULL,
    purpose  text   NOT NULL,
    calls    bigint NOT NULL,
    PRIMARY KEY (day, purpose)
);
