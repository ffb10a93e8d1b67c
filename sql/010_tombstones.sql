-- Deleting an episode keeps its history: the row stays as a tombstone (its id, title and
-- metadata, without its text, summary or vector), so the events and suggestions that name it,
-- and every figure made from them, do not change after the fact. Adding it again (the same
-- external_id) brings it back, pending, with that history.
ALTER TABLE podcasts ADD COLUMN deleted_at timestamptz;
ALTER TABLE podcasts
    DROP CONSTRAINT podcasts_status_check,
    ADD CONSTRAINT podcasts_status_check CHECK (status IN ('pending', 'ready', 'deleted')),
    DROP CONSTRAINT podcasts_check,
    ADD CONSTRAINT podcasts_ready_has_vector CHECK (status <> 'ready' OR embedding IS NOT NULL),
    ADD CONSTRAINT podcasts_deleted_is_dated CHECK ((status = 'deleted') = (deleted_at IS NOT NULL));

CREATE OR REPLACE FUNCTION podcasts_mark_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.content_hash := md5(concat_ws(E'\x1f', NEW.title, coalesce(NEW.description, ''), NEW.transcript));
    IF NEW.deleted_at IS NOT NULL THEN
        RETURN NEW; -- a tombstone: nothing to enrich
    ELSIF TG_OP = 'INSERT' AND NEW.status = 'ready' AND NEW.embedding IS NOT NULL THEN
        NEW.enriched_hash := coalesce(NEW.enriched_hash, NEW.content_hash); -- imported already enriched
    ELSIF TG_OP = 'INSERT' OR NEW.content_hash IS DISTINCT FROM OLD.content_hash
          OR NEW.status = 'deleted' THEN -- or brought back from a tombstone
        IF NEW.content_hash = NEW.enriched_hash AND NEW.embedding IS NOT NULL THEN
            NEW.status := 'ready'; -- back to text that was already enriched: nothing to redo
        ELSE
            NEW.status := 'pending';
            NEW.enrich_attempts := 0;
            NEW.next_attempt_at := now();
            NEW.last_error := NULL;
        END IF;
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;
