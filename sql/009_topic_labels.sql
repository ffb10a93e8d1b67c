-- Trending topics' labels, written once per cluster: by the hash of the chat model and the
-- cluster's episode texts, so analytics and dashboard requests do not call the LLM each time.
CREATE TABLE topic_labels (
    content_hash text PRIMARY KEY,
    label        text NOT NULL,
    labelled_at  timestamptz NOT NULL DEFAULT now()
);
