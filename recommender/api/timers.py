"""The timers: the background worker's pass (`worker/enrichment.py`) and the models' training
(`worker/training.py`), on the same schedule, each on its own."""

from __future__ import annotations

import azure.functions as func

from recommender.worker.enrichment import enrich_pending as enrichment_pass
from recommender.worker.training import train_models as training_pass

bp = func.Blueprint()


@bp.timer_trigger(schedule="%ENRICH_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=False)
def enrich_pending(timer: func.TimerRequest) -> None:
    """Retry what the AI service could not process inline (pending podcasts and histories)."""
    while enrichment_pass():
        pass


@bp.timer_trigger(schedule="%ENRICH_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=False)
def train_models(timer: func.TimerRequest) -> None:
    """Train the collaborative model and the ranker when enough new events arrived."""
    training_pass()
