"""Training: SFT, RL, DPO and on-policy distillation rounds against any TrainingClient, LR
schedules, the ``auto`` learning rate."""

from evaltune.train.distill import DistillRoundResult, run_distill_round
from evaltune.train.dpo import DPOPair, DPORoundResult, run_dpo_round
from evaltune.train.rl import RLRoundResult, group_advantages, run_rl_round
from evaltune.train.schedule import SCHEDULES, auto_learning_rate, lr_at, steps_for_data
from evaltune.train.sft import SFTRoundResult, StepMetrics, batches, run_sft_round

__all__ = [
    "SCHEDULES",
    "DPOPair",
    "DPORoundResult",
    "DistillRoundResult",
    "RLRoundResult",
    "SFTRoundResult",
    "StepMetrics",
    "auto_learning_rate",
    "batches",
    "group_advantages",
    "lr_at",
    "run_distill_round",
    "run_dpo_round",
    "run_rl_round",
    "run_sft_round",
    "steps_for_data",
]
