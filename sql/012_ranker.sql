-- The learned ranker (recommender/model/ranker.py). Each suggestion keeps the features it was
-- ranked by, as they were when it was shown: with what the listener then did, they are what the
-- ranker learns from.
ALTER TABLE suggested_podcasts ADD COLUMN features real[];

-- Every training, adopted or not: requests rank with the newest one if it was adopted (it beat
-- the hand-set blend on the held-out listeners), else with the blend.
CREATE TABLE ranker_models (
    version          serial PRIMARY KEY,
    trained_at       timestamptz NOT NULL DEFAULT now(),
    kind             text NOT NULL,            -- logistic | lambdarank
    model            text NOT NULL,            -- logistic: JSON; lambdarank: LightGBM's model text
    features         text[] NOT NULL,          -- the names of the model's inputs, in order
    rows             integer NOT NULL,         -- shown items it was fitted on
    pages            integer NOT NULL,
    validation_ndcg  real NOT NULL,            -- NDCG@5 on the pages of held-out listeners ...
    blend_ndcg       real NOT NULL,            -- ... and the hand-set blend's on the same pages
    candidates_ndcg  jsonb NOT NULL,           -- every model fitted, by kind
    importances      jsonb NOT NULL,           -- each feature's share
    adopted          boolean NOT NULL,
    label_mark       bigint NOT NULL           -- the newest feedback event it saw
);
