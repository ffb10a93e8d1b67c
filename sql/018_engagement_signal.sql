-- What the models learn from (`model.events.SIGNALS`), chosen by each refresh on the held-out
-- episodes, with the recall@20 of EASE fitted on each signal it tried; requests weigh a listener's
-- own episodes by the same signal.
ALTER TABLE collaborative_model
    ADD COLUMN engagement_signal text NOT NULL DEFAULT 'judgement'
        CHECK (engagement_signal IN ('judgement', 'consumption')),
    ADD COLUMN signal_recall jsonb;
