"""Direct preference optimisation: one DPO round against any TrainingClient.

A pair is a prompt with a *chosen* and a *rejected* completion, each rendered as a datum whose
``weights`` mark the completion's tokens. The loss is DPO's,
``−log σ(β·[(π_c − ref_c) − (π_r − ref_r)])``, where ``π`` is a completion's summed logprob
under the weights being trained and ``ref`` under the frozen reference: the weights the round
starts from, scored once with ``forward`` before the first step.

It goes through Tinker's custom-loss path, as ``TrainingClient.forward_backward_custom`` does
it on Tinker: each step runs ``forward`` for the current logprobs, takes the loss's gradient
with respect to every token's logprob (here in closed form: ``∂L/∂π_c = −β·σ(−z)`` and
``∂L/∂π_r = +β·σ(−z)`` for the pair's margin ``z``) and sends it as the ``weights`` of a
``cross_entropy`` ``forward_backward`` (whose loss is ``−Σ weights·logprobs``, so its gradient
is the DPO gradient), then ``optim_step``. Nothing is local-only: it runs the same on the local
engine, on ``evaltune serve`` and on Tinker, and needs no torch on the caller's side.

Per-step metrics: the loss, the implicit reward margin ``β·[(π_c − ref_c) − (π_r − ref_r)]``
and the share of pairs whose margin is positive (the implicit reward's accuracy).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tinker import types

from evaltune.backends.contract import TrainingClient
from evaltune.errors import TrainingError
from evaltune.train.sft import cycling_batches

__all__ = [
    "DPOPair",
    "DPORoundResult",
    "DPOStepMetrics",
    "dpo_loss",
    "pair_datums",
    "run_dpo_round",
]


@dataclass(frozen=True)
class DPOPair:
    prompt: list[int]
    chosen: list[int]
    rejected: list[int]


@dataclass(frozen=True)
class DPOStepMetrics:
    step: int
    loss: float
    margin: float  # mean implicit reward margin, β·[(π_c − ref_c) − (π_r − ref_r)]
    accuracy: float  # share of pairs whose margin is positive
    lr: float
    tokens: int
    seconds: float

    def to_event(self) -> dict[str, float | int]:
        return {f"dpo/{k}": v for k, v in asdict(self).items()}


@dataclass
class DPORoundResult:
    steps: list[DPOStepMetrics] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.steps)

    def summary(self) -> dict[str, Any]:
        n = len(self.steps)
        return {
            "method": "dpo",
            "steps": n,
            "first_loss": self.steps[0].loss if n else None,
            "final_loss": self.steps[-1].loss if n else None,
            "final_margin": self.steps[-1].margin if n else None,
            "final_accuracy": self.steps[-1].accuracy if n else None,
            "tokens": self.tokens,
            "seconds": round(sum(s.seconds for s in self.steps), 3),
        }


def _datum(prompt: Sequence[int], completion: Sequence[int], weight: float) -> types.Datum:
    tokens = [*prompt, *completion]
    weights = [0.0] * (len(prompt) - 1) + [weight] * len(completion)
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={"target_tokens": tokens[1:], "weights": weights},
    )


def pair_datums(
    pairs: Sequence[DPOPair], scale: Sequence[float] | None = None
) -> list[types.Datum]:
    """``[chosen_0, rejected_0, chosen_1, …]``: completion tokens weighted ``+scale_i`` and
    ``−scale_i`` (1 and 1 when ``scale`` is None, to score them)."""
    out = []
    for i, pair in enumerate(pairs):
        if not pair.prompt or not pair.chosen or not pair.rejected:
            raise TrainingError(f"pair {i}: prompt, chosen and rejected must all be non-empty")
        s = 1.0 if scale is None else float(scale[i])
        out += [_datum(pair.prompt, pair.chosen, s), _datum(pair.prompt, pair.rejected, -s)]
    return out


def _sums(datums: Sequence[types.Datum], out: types.ForwardBackwardOutput) -> list[float]:
    """Each datum's completion logprob (summed over the positions its weights mark)."""
    sums = []
    for datum, output in zip(datums, out.loss_fn_outputs, strict=True):
        lp = output["logprobs"].to_numpy()
        mask = datum.loss_fn_inputs["weights"].to_numpy() != 0
        sums.append(float(lp[mask].sum()))
    return sums


def _sigmoid(x: float) -> float:
    """σ(x) without overflow at either end."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def dpo_loss(
    policy: Sequence[float], reference: Sequence[float], beta: float
) -> tuple[list[float], list[float], list[float]]:
    """Per pair (``policy``/``reference``: chosen, rejected, chosen, … summed logprobs): the
    loss ``softplus(−z)``, the margin ``z = β·[(π_c − ref_c) − (π_r − ref_r)]`` and
    ``σ(−z)``, the size of the loss's gradient over β."""
    losses, margins, grads = [], [], []
    for k in range(0, len(policy), 2):
        z = beta * ((policy[k] - reference[k]) - (policy[k + 1] - reference[k + 1]))
        losses.append(max(-z, 0.0) + math.log1p(math.exp(-abs(z))))  # softplus(−z), stable
        margins.append(z)
        grads.append(_sigmoid(-z))
    return losses, margins, grads


def run_dpo_round(
    training_client: TrainingClient,
    pairs: Sequence[DPOPair],
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    beta: float,
    seed: int,
    step_offset: int = 0,
    weight_decay: float = 0.0,
    grad_clip_norm: float = 0.0,
    on_step: Callable[[DPOStepMetrics], None] | None = None,
) -> DPORoundResult:
    """``steps`` DPO steps of ``batch_size`` pairs, against the round's starting weights."""
    if not pairs:
        raise TrainingError("DPO needs preference pairs; got none")
    scored = pair_datums(pairs)
    reference = _sums(scored, training_client.forward(scored, "cross_entropy").result())
    feed = cycling_batches(len(pairs), batch_size, seed)
    result = DPORoundResult()
    for i in range(steps):
        start = time.perf_counter()
        batch = next(feed)
        chosen = [pairs[j] for j in batch]
        probe = pair_datums(chosen)
        policy = _sums(probe, training_client.forward(probe, "cross_entropy").result())
        ref = [r for j in batch for r in reference[2 * j : 2 * j + 2]]
        losses, margins, grads = dpo_loss(policy, ref, beta)
        # weights = −∂L/∂logprob per token, L the batch mean: +β·σ(−z)/B on the chosen
        # completion's tokens, −β·σ(−z)/B on the rejected one's
        datums = pair_datums(chosen, [beta * g / len(batch) for g in grads])
        fb = training_client.forward_backward(datums, "cross_entropy")
        adam = types.AdamParams(
            learning_rate=learning_rate, weight_decay=weight_decay, grad_clip_norm=grad_clip_norm
        )
        optim = training_client.optim_step(adam)
        fb.result()
        optim.result()
        loss = sum(losses) / len(losses)
        if not math.isfinite(loss):
            raise TrainingError(f"DPO diverged at step {i + 1}: loss {loss}")
        result.steps.append(
            DPOStepMetrics(
                step=step_offset + i + 1,
                loss=loss,
                margin=sum(margins) / len(margins),
                accuracy=sum(m > 0 for m in margins) / len(margins),
                lr=learning_rate,
                tokens=sum(d.model_input.length for d in datums),
                seconds=round(time.perf_counter() - start, 4),
            )
        )
        if on_step:
            on_step(result.steps[-1])
    return result
