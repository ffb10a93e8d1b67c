-- The feedback loop: events attributed to suggestions, profiles that learn from them,
-- generated interest profiles stored as vectors, A/B variants and cached reasons.

ALTER TABLE users
    ADD COLUMN history_profile      vector({{EMBEDDING_DIMENSIONS}}), -- history text + listened episodes
    ADD COLUMN feedback_vector      vector({{EMBEDDING_DIMENSIONS}}), -- decayed, weighted sum of feedback
    ADD COLUMN feedback_at          timestamptz,                      -- when feedback_vector was last decayed
    ADD COLUMN feedback_count       integer NOT NULL DEFAULT 0,
    ADD COLUMN interest_profile     text,                             -- written by the LLM
    ADD COLUMN interest_embedding   vector({{EMBEDDING_DIMENSIONS}}),
    ADD COLUMN interest_profile_at  timestamptz,
    ADD COLUMN events_since_profile integer NOT NULL DEFAULT 0,
    ADD COLUMN reasons_valid_from   timestamptz NOT NULL DEFAULT now(); -- older reasons are not reused
UPDATE users SET history_profile = embedding;

ALTER TABLE suggested_podcasts
    ALTER COLUMN similarity DROP NOT NULL, -- popular picks for cold-start users have none
    ADD COLUMN variant       text NOT NULL DEFAULT 'loop',
    ADD COLUMN strategy      text NOT NULL DEFAULT 'similar'
        CHECK (strategy IN ('similar', 'explore', 'popular')),
    ADD COLUMN reason_source text NOT NULL DEFAULT 'generated'
        CHECK (reason_source IN ('generated', 'cached', 'fallback'));
CREATE INDEX suggested_podcasts_user_podcast ON suggested_podcasts (user_id, podcast_id, suggested_at DESC);
CREATE INDEX suggested_podcasts_time ON suggested_podcasts (suggested_at);

CREATE TABLE feedback_events (
    id            bigserial PRIMARY KEY,
    user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    podcast_id    bigint NOT NULL REFERENCES podcasts (id) ON DELETE CASCADE,
    suggestion_id bigint REFERENCES suggested_podcasts (id) ON DELETE SET NULL,
    event         text NOT NULL
        CHECK (event IN ('click', 'listen', 'complete', 'skip', 'like', 'dislike', 'rate')),
    value         real,
    weight        real NOT NULL, -- how much it moved the profile (negative pushes away)
    event_id      text,          -- the sender's id: a repeated delivery is stored once
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, event_id)
);
CREATE INDEX feedback_events_suggestion ON feedback_events (suggestion_id);
CREATE INDEX feedback_events_time ON feedback_events (created_at);
CREATE INDEX feedback_events_user ON feedback_events (user_id, created_at DESC);
CREATE INDEX feedback_events_podcast ON feedback_events (podcast_id, created_at);
