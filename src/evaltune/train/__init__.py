"""Training: SFT rounds against any TrainingClient, LR schedules, the ``auto`` learning rate."""

from evaltune.train.schedule import SCHEDULES, auto_learning_rate, lr_at, steps_for_data
from evaltune.train.sft import SFTRoundResult, StepMetrics, batches, run_sft_round

__all__ = [
    "SCHEDULES",
    "SFTRoundResult",
    "StepMetrics",
    "auto_learning_rate",
    "batches",
    "lr_at",
    "run_sft_round",
    "steps_for_data",
]
