-- Change capture: any insert, or any change of an episode's text (through the API or plain SQL),
-- marks it for enrichment and notifies the workers. A content hash skips the AI for text that
-- was already enriched.

ALTER TABLE podcasts
    ADD COLUMN content_hash  text,  -- of title, description and transcript as they are now
    ADD COLUMN enriched_hash text;  -- of the text the stored summary and vector were made from
-- One pass over existing rows (each updated row also gets a new HNSW entry: keep it to one).
UPDATE podcasts
SET content_hash = md5(concat_ws(E'\x1f', title, coalesce(description, ''), transcript)),
    enriched_hash = CASE WHEN status = 'ready'
                         THEN md5(concat_ws(E'\x1f', title, coalesce(description, ''), transcript)) END;

CREATE FUNCTION podcasts_mark_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.content_hash := md5(concat_ws(E'\x1f', NEW.title, coalesce(NEW.description, ''), NEW.transcript));
    IF TG_OP = 'INSERT' AND NEW.status = 'ready' AND NEW.embedding IS NOT NULL THEN
        NEW.enriched_hash := coalesce(NEW.enriched_hash, NEW.content_hash); -- imported already enriched
    ELSIF TG_OP = 'INSERT' OR NEW.content_hash IS DISTINCT FROM OLD.content_hash THEN
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

CREATE TRIGGER podcasts_mark_changed
    BEFORE INSERT OR UPDATE OF title, description, transcript ON podcasts
    FOR EACH ROW EXECUTE FUNCTION podcasts_mark_changed();

CREATE FUNCTION podcasts_notify_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('podcasts_pending', NEW.id::text);
    RETURN NULL;
END $$;

CREATE TRIGGER podcasts_notify_inserted
    AFTER INSERT ON podcasts
    FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION podcasts_notify_pending();
CREATE TRIGGER podcasts_notify_changed
    AFTER UPDATE OF title, description, transcript ON podcasts
    FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.content_hash IS DISTINCT FROM NEW.content_hash)
    EXECUTE FUNCTION podcasts_notify_pending();

CREATE INDEX podcasts_language ON podcasts (language);
CREATE INDEX podcasts_published ON podcasts (published_at DESC NULLS LAST, id DESC);
