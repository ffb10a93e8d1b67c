-- Every listener's events on each episode, netted once: `netted_engagements` is the rule of
-- `model.events.net_engagement` in SQL (the latest like, dislike or rating if any, else the sum of
-- every weight, a stated listen +1) and whether they played it (`model.events.CONSUMPTIONS`), and `engagements` holds its rows, kept up to date by triggers
-- in the transaction that writes a listen or an event, whoever writes it (the API, a bulk import,
-- plain SQL). The refresh and each request read `engagements` instead of aggregating every event,
-- so what a refresh costs no longer grows with the whole history.

CREATE VIEW netted_engagements AS
SELECT user_id, podcast_id,
       sum(w)::float8 AS total,
       (array_agg(w ORDER BY at DESC, seq DESC) FILTER (WHERE judged))[1] AS judgement,
       (array_agg(at ORDER BY at DESC, seq DESC) FILTER (WHERE judged))[1] AS judged_at,
       (array_agg(seq ORDER BY at DESC, seq DESC) FILTER (WHERE judged))[1] AS judged_seq,
       max(at) AS last_at,
       bool_or(consumed) AS consumed
FROM (
    SELECT user_id, podcast_id, 1.0::real AS w, occurred_at AS at, 0::bigint AS seq, false AS judged,
           true AS consumed
    FROM user_listens
    UNION ALL
    SELECT user_id, podcast_id, weight, occurred_at, id, event IN ('like', 'dislike', 'rate'),
           event IN ('listen', 'complete', 'like', 'rate')
    FROM feedback_events
) events
GROUP BY user_id, podcast_id;

-- No foreign keys: a row goes when the last listen or event it nets goes (the triggers below),
-- and deleting a listener or an episode cascades to those.
CREATE TABLE engagements (
    user_id    text NOT NULL,
    podcast_id bigint NOT NULL,
    total      float8 NOT NULL,  -- every weight summed
    judgement  real,             -- the latest judgement's weight, which decides when there is one
    judged_at  timestamptz,      -- that judgement's time and event id: what "latest" orders by
    judged_seq bigint,
    last_at    timestamptz NOT NULL,  -- the latest event's time, which the models fade from
    consumed   boolean NOT NULL,      -- they played it: a stated listen, a listen, complete, like or rating
    net        float8 GENERATED ALWAYS AS (coalesce(judgement, total)) STORED,
    PRIMARY KEY (user_id, podcast_id)
);

-- Every row netted again from every event: what the migration does, and what a bulk load that ran
-- with the triggers off (`SET session_replication_role = replica`) runs afterwards.
CREATE FUNCTION net_all_engagements() RETURNS void LANGUAGE sql AS $$
    DELETE FROM engagements;
    INSERT INTO engagements (user_id, podcast_id, total, judgement, judged_at, judged_seq, last_at, consumed)
    SELECT * FROM netted_engagements;
$$;
SELECT net_all_engagements();

-- Whether the first row's judgement came after the second's (or the second has none).
CREATE FUNCTION judged_later(a engagements, b engagements) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT (a.judged_at, a.judged_seq) > (coalesce(b.judged_at, '-infinity'), coalesce(b.judged_seq, 0))
$$;

-- New events fold into the rows they touch (in key order, so concurrent writers lock alike).
CREATE FUNCTION net_added_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO engagements AS e (user_id, podcast_id, total, judgement, judged_at, judged_seq, last_at, consumed)
    SELECT user_id, podcast_id, sum(weight),
           (array_agg(weight ORDER BY occurred_at DESC, id DESC) FILTER (WHERE judged))[1],
           (array_agg(occurred_at ORDER BY occurred_at DESC, id DESC) FILTER (WHERE judged))[1],
           (array_agg(id ORDER BY occurred_at DESC, id DESC) FILTER (WHERE judged))[1],
           max(occurred_at), bool_or(event IN ('listen', 'complete', 'like', 'rate'))
    FROM (SELECT *, event IN ('like', 'dislike', 'rate') AS judged FROM added) a
    GROUP BY user_id, podcast_id
    ORDER BY user_id, podcast_id
    ON CONFLICT (user_id, podcast_id) DO UPDATE SET
        total = e.total + excluded.total,
        judgement = CASE WHEN judged_later(excluded, e) THEN excluded.judgement ELSE e.judgement END,
        judged_at = CASE WHEN judged_later(excluded, e) THEN excluded.judged_at ELSE e.judged_at END,
        judged_seq = CASE WHEN judged_later(excluded, e) THEN excluded.judged_seq ELSE e.judged_seq END,
        last_at = greatest(e.last_at, excluded.last_at),
        consumed = e.consumed OR excluded.consumed;
    RETURN NULL;
END $$;

CREATE FUNCTION net_added_listens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO engagements AS e (user_id, podcast_id, total, last_at, consumed)
    SELECT user_id, podcast_id, count(*), max(occurred_at), true
    FROM added GROUP BY user_id, podcast_id ORDER BY user_id, podcast_id
    ON CONFLICT (user_id, podcast_id) DO UPDATE SET
        total = e.total + excluded.total, last_at = greatest(e.last_at, excluded.last_at), consumed = true;
    RETURN NULL;
END $$;

-- Rows whose listens or events changed or went are netted again from what is left.
CREATE FUNCTION renet_engagements(user_ids text[], podcast_ids bigint[]) RETURNS void LANGUAGE sql AS $$
    DELETE FROM engagements e USING unnest(user_ids, podcast_ids) AS p(user_id, podcast_id)
    WHERE e.user_id = p.user_id AND e.podcast_id = p.podcast_id;
    INSERT INTO engagements (user_id, podcast_id, total, judgement, judged_at, judged_seq, last_at, consumed)
    SELECT n.* FROM netted_engagements n  -- "= ANY" reaches the tables' indexes through the view
    WHERE n.user_id = ANY(user_ids) AND n.podcast_id = ANY(podcast_ids)
      AND (n.user_id, n.podcast_id) IN (SELECT * FROM unnest(user_ids, podcast_ids))
    ORDER BY n.user_id, n.podcast_id;
$$;

CREATE FUNCTION renet_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM renet_engagements(array_agg(user_id), array_agg(podcast_id)) FROM removed;
    RETURN NULL;
END $$;

-- Only what netting reads: a suggestion deleted sets its events' suggestion_id to NULL, no renet.
CREATE FUNCTION renet_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM renet_engagements(array_agg(user_id), array_agg(podcast_id)) FROM (
        SELECT user_id, podcast_id FROM (
            SELECT user_id, podcast_id, occurred_at, to_jsonb(r) ->> 'weight' AS weight, to_jsonb(r) ->> 'event' AS event
            FROM removed r
            EXCEPT
            SELECT user_id, podcast_id, occurred_at, to_jsonb(a) ->> 'weight', to_jsonb(a) ->> 'event' FROM added a
        ) gone
        UNION
        SELECT user_id, podcast_id FROM (
            SELECT user_id, podcast_id, occurred_at, to_jsonb(a) ->> 'weight', to_jsonb(a) ->> 'event' FROM added a
            EXCEPT
            SELECT user_id, podcast_id, occurred_at, to_jsonb(r) ->> 'weight', to_jsonb(r) ->> 'event' FROM removed r
        ) came
    ) changed;
    RETURN NULL;
END $$;

CREATE FUNCTION renet_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM net_all_engagements();
    RETURN NULL;
END $$;

CREATE TRIGGER feedback_events_net AFTER INSERT ON feedback_events
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION net_added_events();
CREATE TRIGGER feedback_events_renet_deleted AFTER DELETE ON feedback_events
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION renet_deleted();
CREATE TRIGGER feedback_events_renet_updated AFTER UPDATE ON feedback_events
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION renet_updated();
CREATE TRIGGER feedback_events_renet_truncated AFTER TRUNCATE ON feedback_events
    FOR EACH STATEMENT EXECUTE FUNCTION renet_all();

CREATE TRIGGER user_listens_net AFTER INSERT ON user_listens
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION net_added_listens();
CREATE TRIGGER user_listens_renet_deleted AFTER DELETE ON user_listens
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION renet_deleted();
CREATE TRIGGER user_listens_renet_updated AFTER UPDATE ON user_listens
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION renet_updated();
CREATE TRIGGER user_listens_renet_truncated AFTER TRUNCATE ON user_listens
    FOR EACH STATEMENT EXECUTE FUNCTION renet_all();
