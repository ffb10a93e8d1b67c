-- The next page itself, computed ahead by the page writer together with its reasons (pages.py).
-- A request serves it as stored, without a probe or a ranking, while the listener is unchanged;
-- the request that takes it deletes it, so each served page is computed once.
CREATE TABLE prepared_pages (
    user_id       text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    user_version  xid NOT NULL,          -- users.xmin when computed: any change to the listener voids it
    model_version xid NOT NULL,          -- collaborative_model.xmin: so does a refresh of the model
    computed_at   timestamptz NOT NULL,
    page_size     integer NOT NULL,
    category      text,
    variant       text NOT NULL,
    items         jsonb NOT NULL         -- in rank order: podcast_id, strategy, similarity, score,
                                         -- evidence and the written reason (null if none)
);
