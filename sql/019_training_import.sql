-- Trainers outside the service (recommender/spark/train.py) write the training tables' contract
-- (docs/loop.md) through two staging tables and one call: `install_trained_model` replaces the
-- factors, the co-engagement rows and the model's row in the caller's one transaction, as the
-- service's worker does, so requests read either the old model or the new one.

-- What the trainer loaded, as text (pgvector's and Postgres' array input): any client can write it.
-- Unlogged: a crash loses only a load that was not installed yet.
CREATE UNLOGGED TABLE trained_factors (
    podcast_id bigint NOT NULL,
    factors    text NOT NULL            -- '[f1,...,f64]'
);
CREATE UNLOGGED TABLE trained_engagement (
    podcast_id      bigint NOT NULL,
    popularity      real NOT NULL,
    listeners       integer NOT NULL,
    neighbor_ids    text NOT NULL,      -- '{id,...}', best first
    neighbor_scores text NOT NULL       -- '{score,...}'
);

-- `podcast_factors_next` (loaded, no key, no index) indexed once and swapped in for
-- `podcast_factors`: inserting into an HNSW index costs a graph search per row (79 s at 100k
-- episodes), one build after the load a fraction of that. One process builds it (the other core is
-- the requests'), in memory that holds the graph of 100k episodes. The lock on podcasts (which lets
-- requests read it) keeps episodes from being deleted between dropping the rows of deleted episodes
-- and the commit; the trigger of 016_factor_swap.sql drops those deleted later. The swap's only
-- exclusive lock is on the factors table. Both the worker (recommender/store/factors.py) and
-- `install_trained_model` swap through it. Dynamic SQL: the tables change under the names.
CREATE FUNCTION swap_in_factors() RETURNS void LANGUAGE plpgsql
    SET maintenance_work_mem = '256MB' SET max_parallel_maintenance_workers = 0 AS $$
BEGIN
    EXECUTE 'ALTER TABLE podcast_factors_next ADD PRIMARY KEY (podcast_id)';
    EXECUTE 'CREATE INDEX podcast_factors_next_ip ON podcast_factors_next USING hnsw (factors vector_ip_ops)';
    LOCK TABLE podcasts IN SHARE ROW EXCLUSIVE MODE;
    EXECUTE 'DELETE FROM podcast_factors_next n WHERE NOT EXISTS (SELECT FROM podcasts p WHERE p.id = n.podcast_id)';
    EXECUTE 'DROP TABLE podcast_factors';
    EXECUTE 'ALTER TABLE podcast_factors_next RENAME TO podcast_factors';
    EXECUTE 'ALTER INDEX podcast_factors_next_pkey RENAME TO podcast_factors_pkey';
    EXECUTE 'ALTER INDEX podcast_factors_next_ip RENAME TO podcast_factors_ip';
END $$;

-- The staged model installed, the staging tables emptied. `gram` NULL: no factor model (too few
-- listeners), the factors are dropped. The marks are how far the trainer's read reached (the newest
-- feedback event's id and listen's storage time): the service's worker counts only what came after
-- as new (`COLLAB_REFRESH_EVENTS`). Waits for a refresh of the worker's under way (its advisory lock)
-- and keeps the next from starting before this commits. Returns the episodes with factors.
CREATE FUNCTION install_trained_model(
    gram vector, regularization real, alpha real, trained_by text, listeners integer,
    event_mark bigint, listen_mark timestamptz, factor_seconds real, refresh_seconds real
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    installed integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(4711002);  -- worker/collaborative.py's REFRESH_LOCK_ID
    IF gram IS NULL THEN
        DELETE FROM podcast_factors;
    ELSE
        EXECUTE 'CREATE TABLE podcast_factors_next (LIKE podcast_factors)';
        EXECUTE 'INSERT INTO podcast_factors_next SELECT podcast_id, factors::vector FROM trained_factors';
        PERFORM swap_in_factors();
        EXECUTE 'SELECT count(*) FROM podcast_factors' INTO installed;
    END IF;
    DELETE FROM podcast_engagement;
    INSERT INTO podcast_engagement (podcast_id, popularity, listeners, neighbor_ids, neighbor_scores)
    SELECT t.podcast_id, t.popularity, t.listeners, t.neighbor_ids::bigint[], t.neighbor_scores::real[]
    FROM trained_engagement t JOIN podcasts p ON p.id = t.podcast_id;  -- episodes deleted since are skipped
    UPDATE collaborative_model SET
        refreshed_at = now(), event_mark = install_trained_model.event_mark,
        listen_mark = install_trained_model.listen_mark, listeners = install_trained_model.listeners,
        episodes = (SELECT count(*) FROM trained_engagement),
        refresh_seconds = install_trained_model.refresh_seconds,
        ease_regularization = NULL, ease_validation_recall = NULL,
        engagement_signal = 'judgement', signal_recall = NULL,
        factor_gram = gram, factor_regularization = CASE WHEN gram IS NOT NULL THEN regularization END,
        factor_alpha = CASE WHEN gram IS NOT NULL THEN alpha END,
        factors_trained_at = now(), factors_trained_by = CASE WHEN gram IS NOT NULL THEN trained_by END,
        factor_episodes = installed,
        factor_seconds = install_trained_model.factor_seconds;
    TRUNCATE trained_factors, trained_engagement;
    RETURN installed;
END $$;
