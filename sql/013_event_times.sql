-- Events keep their own time. The time column each table had becomes `occurred_at`, when the
-- listener did it: given by the caller, else the moment it is stored (so, for the rows stored
-- before this migration, exactly what it was). A new `created_at` is when the row was stored
-- (NULL for the rows stored before: they happened when they were stored). Every time-based
-- figure (decay, popularity, analytics per day, trending, the models' ages) reads `occurred_at`
-- and its indexes stay; what is new since a training is what was stored since (ids, created_at).
-- No row is rewritten: a rename, and a column whose default is set after it is added.
ALTER TABLE feedback_events RENAME COLUMN created_at TO occurred_at;
ALTER TABLE feedback_events ADD COLUMN created_at timestamptz;
ALTER TABLE feedback_events ALTER COLUMN created_at SET DEFAULT now();

ALTER TABLE user_listens RENAME COLUMN listened_at TO occurred_at;
ALTER TABLE user_listens ADD COLUMN created_at timestamptz;
ALTER TABLE user_listens ALTER COLUMN created_at SET DEFAULT now();
DROP INDEX user_listens_time;  -- was on the stored time: the refresh's mark of what it has seen
CREATE INDEX user_listens_time ON user_listens (created_at);
