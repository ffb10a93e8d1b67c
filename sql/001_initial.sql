-- Podcasts, users, listens and the suggestions written back by every recommendation.
-- {{EMBEDDING_DIMENSIONS}} is replaced by the embedding model's dimension when the
-- migration is applied, {{EMBEDDING_STORAGE}} by vector or halfvec (EMBEDDING_STORAGE); both
-- are fixed for the life of the database.

CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE podcasts (
    id               bigserial PRIMARY KEY,
    external_id      text UNIQUE,
    title            text NOT NULL,
    description      text,
    transcript       text NOT NULL,
    category         text,
    language         text,
    duration_seconds integer CHECK (duration_seconds >= 0),
    published_at     timestamptz,
    summary          text,
    embedding        {{EMBEDDING_STORAGE}}({{EMBEDDING_DIMENSIONS}}),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready')),
    enrich_attempts  integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    CHECK (status = 'pending' OR embedding IS NOT NULL),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Cosine distance (<=>) is what recommendations order by; HNSW keeps it fast at scale.
CREATE INDEX podcasts_embedding_hnsw ON podcasts
    USING hnsw (embedding {{EMBEDDING_STORAGE}}_cosine_ops) WITH (m = 16, ef_construction = 64);
CREATE INDEX podcasts_category ON podcasts (category);
CREATE INDEX podcasts_pending ON podcasts (next_attempt_at) WHERE status = 'pending';

CREATE TABLE users (
    id                text PRIMARY KEY,
    name              text,
    listening_history text,
    history_embedding vector({{EMBEDDING_DIMENSIONS}}), -- the history text alone
    embedding         vector({{EMBEDDING_DIMENSIONS}}), -- the profile recommendations start from
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_listens (
    user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    podcast_id  bigint NOT NULL REFERENCES podcasts (id) ON DELETE CASCADE,
    listened_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, podcast_id)
);

CREATE TABLE suggested_podcasts (
    id           bigserial PRIMARY KEY,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    podcast_id   bigint NOT NULL REFERENCES podcasts (id) ON DELETE CASCADE,
    similarity   real NOT NULL,
    rank         integer NOT NULL,
    reason       text NOT NULL,
    suggested_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX suggested_podcasts_user_time ON suggested_podcasts (user_id, suggested_at DESC);
CREATE INDEX suggested_podcasts_podcast ON suggested_podcasts (podcast_id);
