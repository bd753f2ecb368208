"""On-policy distillation: the student samples, a teacher grades every token.

Each step snapshots the student's weights as a sampler, samples one completion per prompt,
and asks the teacher (any ``SamplingClient``: a checkpoint or model the backend loads, a model
behind ``evaltune serve``, a Tinker model) for the logprob of every sampled token with
``compute_logprobs``. The per-token reverse KL, ``student − teacher`` logprob, is the cost of
having sampled that token; its negative (× ``kl_coef``) is the token's advantage, and the
datums go through Tinker's ``importance_sampling`` loss like RL's (``train/rl.py``): the student
is pushed towards what the teacher would have said, on the states the student itself reaches
(the recipe of tinker-cookbook's on-policy distillation). Off-policy distillation (the teacher
writes completions, the student trains on them as SFT data) needs nothing here: the loop
renders the teacher's completions and runs an SFT round.

Per-step metric: the mean per-token reverse KL of the sampled completions, which falls as the
student comes to agree with the teacher.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tinker import types

from evaltune.backends.contract import SamplingClient, TrainingClient
from evaltune.errors import TrainingError
from evaltune.train.rl import policy_step, rollout_datum, sample_current
from evaltune.train.sft import cycling_batches

__all__ = ["DistillRoundResult", "DistillStepMetrics", "run_distill_round", "teacher_advantages"]


@dataclass(frozen=True)
class DistillStepMetrics:
    step: int
    reverse_kl: float  # mean per-token student − teacher logprob of the sampled tokens
    loss: float
    lr: float
    tokens: int
    sampled_tokens: int
    seconds: float

    def to_event(self) -> dict[str, float | int]:
        return {f"distill/{k}": v for k, v in asdict(self).items()}


@dataclass
class DistillRoundResult:
    steps: list[DistillStepMetrics] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.steps)

    def summary(self) -> dict[str, Any]:
        n = len(self.steps)
        return {
            "method": "distill",
            "steps": n,
            "first_reverse_kl": self.steps[0].reverse_kl if n else None,
            "final_reverse_kl": self.steps[-1].reverse_kl if n else None,
            "final_loss": self.steps[-1].loss if n else None,
            "tokens": self.tokens,
            "sampled_tokens": sum(s.sampled_tokens for s in self.steps),
            "seconds": round(sum(s.seconds for s in self.steps), 3),
        }


def teacher_advantages(
    student: Sequence[float], teacher: Sequence[float | None], kl_coef: float
) -> list[float]:
    """Per sampled token: ``−kl_coef·(student − teacher)`` logprob (0 where the teacher gave
    none)."""
    if len(student) != len(teacher):
        raise TrainingError(
            f"the teacher scored {len(teacher)} tokens of a {len(student)}-token completion"
        )
    return [0.0 if t is None else -kl_coef * (s - t) for s, t in zip(student, teacher, strict=True)]


def run_distill_round(
    training_client: TrainingClient,
    teacher: SamplingClient,
    prompts: Sequence[Sequence[int]],
    *,
    steps: int,
    prompts_per_step: int,
    learning_rate: float,
    seed: int,
    kl_coef: float = 1.0,
    max_tokens: int = 32,
    temperature: float = 1.0,
    stop: Sequence[str] | Sequence[int] | None = None,
    step_offset: int = 0,
    weight_decay: float = 0.0,
    grad_clip_norm: float = 0.0,
    on_step: Callable[[DistillStepMetrics], None] | None = None,
) -> DistillRoundResult:
    """``steps`` on-policy distillation steps over ``prompts`` (token ids)."""
    if not prompts:
        raise TrainingError("distillation needs prompts to sample from; got none")
    feed = cycling_batches(len(prompts), prompts_per_step, seed)
    result = DistillRoundResult()
    for i in range(steps):
        start = time.perf_counter()
        picked = next(feed)
        sampled = sample_current(
            training_client,
            [prompts[j] for j in picked],
            1,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed * 100_003 + i,
            stop=stop,
        )
        completions = [group[0] for group in sampled]
        scoring = [
            teacher.compute_logprobs(types.ModelInput.from_ints([*prompts[j], *c.tokens]))
            for j, c in zip(picked, completions, strict=True)
        ]
        datums, kl, n = [], 0.0, 0
        for j, c, score in zip(picked, completions, scoring, strict=True):
            if not c.tokens:
                continue
            student = list(c.logprobs or [])
            if len(student) != len(c.tokens):
                raise TrainingError("the student's sampler returned no logprobs for its tokens")
            teacher_lp = list(score.result())[len(prompts[j]) :]
            adv = teacher_advantages(student, teacher_lp, kl_coef)
            kl += sum(s - t for s, t in zip(student, teacher_lp, strict=True) if t is not None)
            n += sum(t is not None for t in teacher_lp)
            datums.append(rollout_datum(prompts[j], c.tokens, student, adv))
        step = policy_step(
            training_client,
            datums,
            "importance_sampling",
            None,
            learning_rate,
            weight_decay,
            grad_clip_norm,
        )
        result.steps.append(
            DistillStepMetrics(
                step=step_offset + i + 1,
                reverse_kl=kl / n if n else 0.0,
                loss=step["loss"],
                lr=learning_rate,
                tokens=int(step["tokens"]),
                sampled_tokens=sum(len(c.tokens) for c in completions),
                seconds=round(time.perf_counter() - start, 4),
            )
        )
        if on_step:
            on_step(result.steps[-1])
    return result
