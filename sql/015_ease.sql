-- EASE (model/ease.py) beside co-engagement: each episode's largest EASE weights, read by the same
-- probe, and the lambda the refresh chose on the held-out episodes, with its recall@20 there.
ALTER TABLE podcast_engagement
    ADD COLUMN ease_ids     bigint[] NOT NULL DEFAULT '{}',
    ADD COLUMN ease_weights real[] NOT NULL DEFAULT '{}';

ALTER TABLE collaborative_model
    ADD COLUMN ease_regularization    real,
    ADD COLUMN ease_validation_recall real;
