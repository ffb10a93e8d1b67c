-- What listeners do, across all listeners: per episode its popularity (recent net engagement)
-- and its nearest episodes by co-engagement. Rebuilt by the worker (collaborative.refresh);
-- requests read it with one primary-key probe per episode of the listener.

CREATE TABLE podcast_engagement (
    podcast_id      bigint PRIMARY KEY REFERENCES podcasts (id) ON DELETE CASCADE,
    popularity      real NOT NULL,    -- net engagement, halving every POPULARITY_HALF_LIFE_DAYS
    listeners       integer NOT NULL, -- listeners with positive net engagement
    neighbor_ids    bigint[] NOT NULL DEFAULT '{}',
    neighbor_scores real[] NOT NULL DEFAULT '{}'
);
CREATE INDEX podcast_engagement_popularity ON podcast_engagement (popularity DESC);

-- One row: how fresh the model is. Events with a larger id, or listens after listen_mark,
-- arrived since the last refresh.
CREATE TABLE collaborative_model (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    refreshed_at     timestamptz,
    event_mark       bigint NOT NULL DEFAULT 0,
    listen_mark      timestamptz NOT NULL DEFAULT '-infinity',
    listeners        integer NOT NULL DEFAULT 0, -- with positive engagement: the popularity scale
    episodes         integer NOT NULL DEFAULT 0,
    refresh_seconds  real
);
INSERT INTO collaborative_model DEFAULT VALUES;
CREATE INDEX user_listens_time ON user_listens (listened_at);

-- Suggestions now say which signal chose them.
ALTER TABLE suggested_podcasts DROP CONSTRAINT suggested_podcasts_strategy_check;
ALTER TABLE suggested_podcasts ADD CONSTRAINT suggested_podcasts_strategy_check
    CHECK (strategy IN ('similar', 'collaborative', 'explore', 'popular'));
