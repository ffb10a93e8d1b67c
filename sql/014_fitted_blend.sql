-- The blend's weights fitted by each training on the deployment's own pages (model/fusion.py), with
-- the evidence for them: the loop ranks with them when they beat the configured blend out of
-- sample (and the learned ranker, when adopted, is measured against them). NULL for older trainings.
ALTER TABLE ranker_models ADD COLUMN blend jsonb;
