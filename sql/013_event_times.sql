-- Events keep their own time: `occurred_at` is when the listener did it (given by the caller, or
-- the moment it was stored), `created_at` / `listened_at` stay when it was stored. Every
-- time-based figure (decay, popularity, analytics per day, trending, the models' ages) reads
-- `occurred_at`; what counts as new since a training reads the stored time or the id.
ALTER TABLE feedback_events ADD COLUMN occurred_at timestamptz;
UPDATE feedback_events SET occurred_at = created_at;
ALTER TABLE feedback_events ALTER COLUMN occurred_at SET DEFAULT now(),
                            ALTER COLUMN occurred_at SET NOT NULL;
DROP INDEX feedback_events_time, feedback_events_user, feedback_events_podcast;
CREATE INDEX feedback_events_time ON feedback_events (occurred_at);
CREATE INDEX feedback_events_user ON feedback_events (user_id, occurred_at DESC);
CREATE INDEX feedback_events_podcast ON feedback_events (podcast_id, occurred_at);

ALTER TABLE user_listens ADD COLUMN occurred_at timestamptz;
UPDATE user_listens SET occurred_at = listened_at;
ALTER TABLE user_listens ALTER COLUMN occurred_at SET DEFAULT now(),
                         ALTER COLUMN occurred_at SET NOT NULL;
