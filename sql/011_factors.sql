-- Matrix factorisation (iALS): each episode's factors, and what a request needs to fold a
-- listener in from their own events (the Gram matrix Y'Y, the regularization and the confidence
-- scale the factors were trained with). This is a table contract: the worker writes it
-- (`python cli.py train`), and so may any other trainer (Spark MLlib's ALS, plain numpy), the
-- serving code reads nothing else. See docs/loop.md, "Training tables".

CREATE TABLE podcast_factors (
    podcast_id bigint PRIMARY KEY REFERENCES podcasts (id) ON DELETE CASCADE,
    factors    vector(64) NOT NULL -- the episode's row of Y; a listener's score is its inner product
);
-- Maximum inner product search: a request asks for the episodes whose factors best match the
-- listener's, one index probe.
CREATE INDEX podcast_factors_ip ON podcast_factors USING hnsw (factors vector_ip_ops);

ALTER TABLE collaborative_model
    ADD COLUMN factor_gram           vector(4096), -- Y'Y over every row of podcast_factors, row-major 64 x 64
    ADD COLUMN factor_regularization real,         -- lambda of the least squares
    ADD COLUMN factor_alpha          real,         -- confidence = alpha * |net engagement|
    ADD COLUMN factors_trained_at    timestamptz,
    ADD COLUMN factors_trained_by    text,         -- e.g. 'implicit 0.7.2 als', 'spark mllib als'
    ADD COLUMN factor_episodes       integer NOT NULL DEFAULT 0,
    ADD COLUMN factor_seconds        real;
