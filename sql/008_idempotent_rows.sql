-- Idempotency after a crash. A claim names its holder, a process the database can tell is alive
-- (it holds the session advisory lock (4712, holder) on a connection of its own), so the claim of
-- a process that died is taken over at once. An episode added without an external_id carries the
-- key of the request that added it, so the retry of a request that died after storing it finds it
-- instead of adding it again.
ALTER TABLE idempotency_keys ADD COLUMN holder integer;
ALTER TABLE podcasts ADD COLUMN idempotency_key text UNIQUE;
