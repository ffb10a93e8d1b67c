-- Idempotency-Key: the first answer to a POST, kept for a day, replayed to its repeats.
CREATE TABLE idempotency_keys (
    key         text NOT NULL,
    route       text NOT NULL,
    fingerprint text NOT NULL,                      -- sha256 of the caller and the body
    status      integer,                            -- NULL while the first request runs
    body        text,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key, route)
);
CREATE INDEX idempotency_keys_claimed_at ON idempotency_keys (claimed_at);
