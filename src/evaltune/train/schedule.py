"""Learning-rate schedules and the ``auto`` learning rate.

``auto`` follows the model-size heuristic Thinking Machines publish for LoRA on Tinker
(tinker-cookbook's ``hyperparam_utils``): ``LR = 5e-5 × 10 × (2000 / hidden_size) ** p`` —
a full-fine-tuning base rate, ×10 for LoRA (whose ``lora_alpha`` is fixed at 32, so the rate does
not depend on the rank), scaled up for narrower models. ``p`` is 0.0775 for the Qwen family and
0.781 otherwise (the exponent fitted on Llama, which we also use for Gemma). For Gemma 3 270M
(hidden size 640) that gives about 1.2e-3.
"""

from __future__ import annotations

import math

__all__ = ["SCHEDULES", "auto_learning_rate", "lr_at"]

SCHEDULES = ("constant", "linear", "cosine")
BASE_LR = 5e-5
LORA_MULTIPLIER = 10.0


def auto_learning_rate(model_name: str, hidden_size: int) -> float:
    """The heuristic LoRA learning rate for a model of this width (see module docstring)."""
    power = 0.0775 if "qwen" in model_name.lower() else 0.781
    return BASE_LR * LORA_MULTIPLIER * (2000 / hidden_size) ** power


def lr_at(
    step: int, total_steps: int, base_lr: float, schedule: str, warmup_steps: int = 0
) -> float:
    """The learning rate of 0-based ``step`` out of ``total_steps``.

    Linear warmup from ~0 over ``warmup_steps``, then constant, linear decay to 0, or cosine
    decay to 0 over the remaining steps.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    if schedule == "linear":
        return base_lr * (1.0 - progress)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def steps_for_data(
    n: int,
    batch_size: int,
    grad_accum: int,
    passes: float,
    min_steps: int,
    max_steps: int,
    replay: int = 0,
) -> int:
    """Optimizer steps for ``passes`` over ``n`` new examples and one over ``replay`` earlier
    ones, within ``[min_steps, max_steps]``: what ``steps_per_round: auto`` trains (a round's
    steps follow its new data, not a fixed count; replay is mixed into the same batches)."""
    steps = math.ceil((passes * n + replay) / (batch_size * grad_accum))
    return max(min_steps, min(steps, max_steps))
