-- An episode's factors go with it by a trigger on `podcasts`, not a foreign key: the swap that puts
-- a new `podcast_factors` in place (recommender/store/factors.py) drops the old table, and dropping
-- a table that references `podcasts` takes an ACCESS EXCLUSIVE lock on `podcasts` too. Taken after
-- the one on the old table, that deadlocked with any request that had read `podcasts` and then
-- reached for the factors. Now the swap needs only the factors table.
ALTER TABLE podcast_factors DROP CONSTRAINT IF EXISTS podcast_factors_podcast_id_fkey;

CREATE FUNCTION drop_deleted_factors() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM podcast_factors f USING deleted d WHERE f.podcast_id = d.id;
    RETURN NULL;
END $$;

CREATE TRIGGER podcasts_drop_factors AFTER DELETE ON podcasts
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION drop_deleted_factors();
