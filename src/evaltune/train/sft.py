"""One supervised fine-tuning round: shuffled batches → forward_backward → optim_step.

The round talks to a ``TrainingClient`` only, so it runs unchanged on the local engine and on
Tinker. Each optimizer step takes ``grad_accum`` micro-batches of ``batch_size`` datums (all
queued before waiting, as Tinker recommends); the loss reported per step is the mean NLL per
weighted token. Batches come from a seeded shuffle of the whole dataset, epoch after epoch, so a
round replayed after a crash sees exactly the same data.

A non-finite loss or gradient norm stops the round with a ``TrainingError`` before the step is
reported: the caller saves nothing from it. The optimizer step is queued before its loss is read
(one round trip per step on Tinker), so the client's weights are spoiled by then; they are never
saved, and a resumed run starts again from the last saved checkpoint.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tinker import types

from evaltune.backends.contract import TrainingClient
from evaltune.errors import EvaltuneError, TrainingError
from evaltune.train.schedule import lr_at

__all__ = ["SFTRoundResult", "StepMetrics", "batches", "run_sft_round"]


@dataclass(frozen=True)
class StepMetrics:
    step: int  # global, 1-based, across rounds
    loss: float  # mean NLL per weighted token
    lr: float
    tokens: int  # input tokens this step
    weighted_tokens: float
    seconds: float
    tokens_per_s: float
    grad_norm: float | None = None

    def to_event(self) -> dict[str, float | int | None]:
        return {f"train/{k}": v for k, v in asdict(self).items()}


@dataclass
class SFTRoundResult:
    steps: list[StepMetrics] = field(default_factory=list)
    # datum index -> its loss (NLL per weighted token) the last time a step trained on it,
    # from the backend's per-datum outputs; empty when the backend returns none
    example_loss: dict[int, float] = field(default_factory=dict)

    @property
    def final_loss(self) -> float | None:
        return self.steps[-1].loss if self.steps else None

    @property
    def mean_loss(self) -> float | None:
        return sum(s.loss for s in self.steps) / len(self.steps) if self.steps else None

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.steps)

    def summary(self) -> dict[str, float | int | None]:
        seconds = sum(s.seconds for s in self.steps)
        return {
            "steps": len(self.steps),
            "first_loss": self.steps[0].loss if self.steps else None,
            "final_loss": self.final_loss,
            "mean_loss": self.mean_loss,
            "tokens": self.tokens,
            "seconds": round(seconds, 3),
            "tokens_per_s": round(self.tokens / seconds, 1) if seconds else None,
        }


def batches(n: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless batches of indices: a fresh seeded shuffle per epoch, no partial batches
    unless the dataset is smaller than one batch."""
    if n == 0:
        raise EvaltuneError("no training examples to train on")
    rng = random.Random(seed)
    size = min(batch_size, n)
    while True:
        order = list(range(n))
        rng.shuffle(order)
        for start in range(0, n - size + 1, size):
            yield order[start : start + size]


def cycling_batches(n: int, size: int, seed: int) -> Iterator[list[int]]:
    """Endless batches of ``min(size, n)`` indices from a seeded shuffle, reshuffled the moment
    an epoch runs out (a batch may span two epochs): the order of RL, DPO and distillation
    steps, which take every prompt or pair alike."""
    rng = random.Random(seed)
    order: list[int] = []
    while True:
        batch = []
        for _ in range(min(size, n)):
            if not order:
                order = list(range(n))
                rng.shuffle(order)
            batch.append(order.pop())
        yield batch


def _datum_losses(
    indices: Sequence[int], weights_of: Sequence[Any], out: types.ForwardBackwardOutput
) -> dict[int, float]:
    """Per datum of one batch (``weights_of``: their loss weights, in batch order): its
    weighted mean NLL, from the per-token ``logprobs`` the cross-entropy loss returns
    (Tinker's and the local backend's); none when absent."""
    outputs = out.loss_fn_outputs or []
    if len(outputs) != len(indices):
        return {}
    losses = {}
    for j, weights, output in zip(indices, weights_of, outputs, strict=True):
        logprobs = output.get("logprobs") if isinstance(output, Mapping) else None
        if logprobs is None:
            return {}
        lp = logprobs.to_numpy()
        total = float(weights.sum())
        if total > 0 and len(lp) == len(weights):
            losses[j] = float(-(lp * weights).sum() / total)
    return losses


def _check_finite(m: StepMetrics, i: int, steps: int) -> None:
    """Stop the round when step ``i`` of ``steps`` diverged: a nan/inf loss or gradient norm."""
    if math.isfinite(m.loss) and (m.grad_norm is None or math.isfinite(m.grad_norm)):
        return
    norm = "" if m.grad_norm is None else f", gradient norm {m.grad_norm}"
    raise TrainingError(
        f"training diverged at step {i} of {steps} (step {m.step} of the run): loss {m.loss}"
        f"{norm} at learning rate {m.lr:.3g}; nothing from this round was saved: lower "
        "training.learning_rate (or set training.grad_clip_norm)"
    )


def run_sft_round(
    training_client: TrainingClient,  # local or tinker
    datums: Sequence[types.Datum],
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    step_offset: int = 0,
    grad_accum: int = 1,
    schedule: str = "constant",
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    grad_clip_norm: float = 0.0,
    on_step: Callable[[StepMetrics], None] | None = None,
) -> SFTRoundResult:
    """Train ``steps`` optimizer steps; ``step_offset`` numbers them after earlier rounds.

    Raises ``TrainingError`` at the first step whose loss or gradient norm is not finite."""
    result = SFTRoundResult()
    feed = batches(len(datums), batch_size, seed)
    for i in range(steps):
        lr = lr_at(i, steps, learning_rate, schedule, warmup_steps)
        start = time.perf_counter()
        picked = [next(feed) for _ in range(grad_accum)]
        micro = [[datums[j] for j in idx] for idx in picked]
        pending = [training_client.forward_backward(b, "cross_entropy") for b in micro]
        adam = types.AdamParams(
            learning_rate=lr, weight_decay=weight_decay, grad_clip_norm=grad_clip_norm
        )
        optim = training_client.optim_step(adam)
        loss_sum = sum(f.result().metrics["loss:sum"] for f in pending)
        optim_metrics = optim.result().metrics or {}
        seconds = time.perf_counter() - start
        weights = [[d.loss_fn_inputs["weights"].to_numpy() for d in b] for b in micro]
        for idx, ws, future in zip(picked, weights, pending, strict=True):
            result.example_loss.update(_datum_losses(idx, ws, future.result()))
        weight = sum(float(w.sum()) for ws in weights for w in ws)
        tokens = sum(d.model_input.length for b in micro for d in b)
        metrics = StepMetrics(
            step=step_offset + i + 1,
            loss=loss_sum / max(weight, 1e-9),
            lr=lr,
            tokens=tokens,
            weighted_tokens=weight,
            seconds=round(seconds, 4),
            tokens_per_s=round(tokens / seconds, 1) if seconds > 0 else 0.0,
            grad_norm=optim_metrics.get("grad_norm"),
        )
        _check_finite(metrics, i + 1, steps)
        result.steps.append(metrics)
        if on_step:
            on_step(metrics)
    return result
