"""Reinforcement learning with verifiable rewards: one RL round against any TrainingClient.

Each step takes a batch of prompts, snapshots the current weights as a sampler
(``save_weights_and_get_sampling_client``), samples a *group* of ``group_size`` completions per
prompt, scores every completion with a reward function (a grader of the eval suites: numeric
answers, exact or normalised strings, regexes, code tests, a judge, a Python function) and
turns the rewards into group-relative advantages, ``reward − mean(reward of its group)``: a
completion is pushed up exactly when it did better than its siblings, so a group whose
completions all scored the same carries no signal and is left out of the step. The datums
carry the sampler's per-token logprobs and the advantage on every completion token (0 on the
prompt), and go through Tinker's ``importance_sampling`` or ``ppo`` loss with
``forward_backward``, then ``optim_step``: nothing here is local-only, so RL runs the same on
the local engine, on ``evaltune serve`` and on Tinker.

Per-step metrics: mean reward, the share of groups with signal, the mean per-token KL between
the sampler and the weights the gradient was taken at (``sampler − trainer`` logprob, ~0 when
sampling and training weights agree: a large value means the two engines disagree), the
sampled tokens' mean negative logprob (an estimate of the policy's entropy), and tokens
sampled and trained.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tinker import types

from evaltune.backends.contract import TrainingClient
from evaltune.errors import TrainingError
from evaltune.train.sft import cycling_batches

__all__ = [
    "RLRoundResult",
    "RLStepMetrics",
    "Reward",
    "group_advantages",
    "policy_step",
    "rollout_datum",
    "rollout_datums",
    "run_rl_round",
    "sample_current",
]

# rewards for (the prompt index each completion answers, the completions' tokens), in order;
# the caller parses and grades (train/ knows no renderer or grader)
Reward = Callable[[Sequence[int], Sequence[Sequence[int]]], list[float]]
LOSSES = ("importance_sampling", "ppo")


@dataclass(frozen=True)
class RLStepMetrics:
    step: int  # global, 1-based, across rounds
    reward: float  # mean reward of every sampled completion
    signal: float  # share of groups whose rewards differ (the others teach nothing)
    kl: float  # mean per-token sampler − trainer logprob on the trained completions
    entropy: float  # mean negative logprob of the sampled tokens
    loss: float  # the loss's sum over tokens / trained completion tokens
    lr: float
    tokens: int  # model-input tokens trained this step
    sampled_tokens: int
    seconds: float

    def to_event(self) -> dict[str, float | int]:
        return {f"rl/{k}": v for k, v in asdict(self).items()}


@dataclass
class RLRoundResult:
    steps: list[RLStepMetrics] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.steps)

    def summary(self) -> dict[str, Any]:
        n = len(self.steps)
        seconds = sum(s.seconds for s in self.steps)
        return {
            "method": "rl",
            "steps": n,
            "first_reward": self.steps[0].reward if n else None,
            "final_reward": self.steps[-1].reward if n else None,
            "mean_reward": sum(s.reward for s in self.steps) / n if n else None,
            "mean_signal": sum(s.signal for s in self.steps) / n if n else None,
            "final_loss": self.steps[-1].loss if n else None,
            "tokens": self.tokens,
            "sampled_tokens": sum(s.sampled_tokens for s in self.steps),
            "seconds": round(seconds, 3),
        }


def group_advantages(
    rewards: Sequence[float], group_size: int, normalize: bool = False
) -> list[float]:
    """``reward − mean(its group)`` (``normalize``: divided by the group's standard deviation
    too, 0 where it is 0); groups are consecutive runs of ``group_size``."""
    if group_size < 1 or len(rewards) % group_size:
        raise TrainingError(f"{len(rewards)} rewards do not split into groups of {group_size}")
    out: list[float] = []
    for start in range(0, len(rewards), group_size):
        group = list(rewards[start : start + group_size])
        mean = sum(group) / len(group)
        centred = [r - mean for r in group]
        if normalize:
            std = math.sqrt(sum(c * c for c in centred) / len(group))
            centred = [c / std if std > 0 else 0.0 for c in centred]
        out += centred
    return out


def rollout_datum(
    prompt: Sequence[int],
    completion: Sequence[int],
    logprobs: Sequence[float],
    advantages: Sequence[float],
) -> types.Datum:
    """Input ``prompt + completion`` shifted by one, the sampler's logprobs and a per-token
    advantage on the completion tokens, 0 on the prompt (those positions take no part in the
    loss): the datum of Tinker's ``importance_sampling`` and ``ppo`` losses."""
    tokens = [*prompt, *completion]
    pad = [0.0] * (len(prompt) - 1)
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={
            "target_tokens": tokens[1:],
            "logprobs": pad + list(logprobs),
            "advantages": pad + list(advantages),
        },
    )


def rollout_datums(
    prompt: Sequence[int], completions: Sequence[types.SampledSequence], advantages: Sequence[float]
) -> list[types.Datum]:
    """One ``rollout_datum`` per completion with a non-zero advantage, on all its tokens."""
    out = []
    for seq, adv in zip(completions, advantages, strict=True):
        if not seq.tokens or adv == 0.0:
            continue
        lps = list(seq.logprobs or [])
        if len(lps) != len(seq.tokens):
            raise TrainingError(
                "the sampler returned no logprobs for its tokens; RL needs them (importance "
                "sampling corrects for the weights that sampled)"
            )
        out.append(rollout_datum(prompt, seq.tokens, lps, [float(adv)] * len(seq.tokens)))
    return out


def sample_current(
    training_client: TrainingClient,
    prompts: Sequence[Sequence[int]],
    n: int,
    *,
    max_tokens: int,
    temperature: float,
    seed: int,
    stop: Sequence[str] | Sequence[int] | None,
) -> list[list[types.SampledSequence]]:
    """``n`` completions of each prompt from the client's current weights (snapshotted as a
    sampler), all requests in flight at once."""
    sampler = training_client.save_weights_and_get_sampling_client().result()
    params = types.SamplingParams(
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        stop=list(stop) if stop else None,
    )
    pending = [sampler.sample(types.ModelInput.from_ints(p), n, params) for p in prompts]
    return [list(p.result().sequences) for p in pending]


def run_rl_round(
    training_client: TrainingClient,
    prompts: Sequence[Sequence[int]],
    reward: Reward,
    *,
    steps: int,
    prompts_per_step: int,
    group_size: int,
    learning_rate: float,
    seed: int,
    loss_fn: str = "importance_sampling",
    loss_fn_config: Mapping[str, float] | None = None,
    max_tokens: int = 32,
    temperature: float = 1.0,
    stop: Sequence[str] | Sequence[int] | None = None,
    normalize: bool = False,
    step_offset: int = 0,
    weight_decay: float = 0.0,
    grad_clip_norm: float = 0.0,
    on_step: Callable[[RLStepMetrics], None] | None = None,
) -> RLRoundResult:
    """``steps`` RL steps over ``prompts`` (token ids), ``prompts_per_step`` a step in a seeded
    order, epoch after epoch; ``stop``: the sampler's stop sequences."""
    if loss_fn not in LOSSES:
        raise TrainingError(f"RL loss {loss_fn!r} is unknown; choose one of: {', '.join(LOSSES)}")
    if not prompts:
        raise TrainingError("RL needs prompts to sample from; got none")
    feed = cycling_batches(len(prompts), prompts_per_step, seed)
    result = RLRoundResult()
    for i in range(steps):
        start = time.perf_counter()
        picked = next(feed)
        groups = sample_current(
            training_client,
            [prompts[j] for j in picked],
            group_size,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed * 100_003 + i,
            stop=stop,
        )
        if any(len(g) != group_size for g in groups):
            raise TrainingError(f"the sampler returned groups of other sizes than {group_size}")
        answered = [j for j in picked for _ in range(group_size)]
        rewards = [float(r) for r in reward(answered, [s.tokens for g in groups for s in g])]
        advantages = group_advantages(rewards, group_size, normalize)
        datums: list[types.Datum] = []
        signal = 0
        for k, (j, group) in enumerate(zip(picked, groups, strict=True)):
            adv = advantages[k * group_size : (k + 1) * group_size]
            signal += any(a != 0.0 for a in adv)
            datums += rollout_datums(prompts[j], group, adv)
        sampled = [s for g in groups for s in g]
        sampled_lps = [lp for s in sampled for lp in (s.logprobs or [])]
        metrics = policy_step(
            training_client,
            datums,
            loss_fn,
            loss_fn_config,
            learning_rate,
            weight_decay,
            grad_clip_norm,
        )
        result.steps.append(
            RLStepMetrics(
                step=step_offset + i + 1,
                reward=sum(rewards) / len(rewards),
                signal=signal / len(groups),
                kl=metrics["kl"],
                entropy=-sum(sampled_lps) / len(sampled_lps) if sampled_lps else 0.0,
                loss=metrics["loss"],
                lr=learning_rate,
                tokens=int(metrics["tokens"]),
                sampled_tokens=sum(len(s.tokens) for s in sampled),
                seconds=round(time.perf_counter() - start, 4),
            )
        )
        if on_step:
            on_step(result.steps[-1])
    return result


def policy_step(
    client: TrainingClient,
    datums: list[types.Datum],
    loss_fn: str,
    config: Mapping[str, float] | None,
    lr: float,
    weight_decay: float,
    grad_clip_norm: float,
) -> dict[str, float]:
    """One forward_backward + optim_step on datums carrying sampler ``logprobs`` and
    ``advantages`` (none when there is nothing to train): the loss per trained token, the
    sampler–trainer KL on those tokens, and the tokens trained."""
    if not datums:
        return {"loss": 0.0, "kl": 0.0, "tokens": 0.0}
    fb = client.forward_backward(datums, loss_fn, dict(config) if config else None)
    adam = types.AdamParams(
        learning_rate=lr, weight_decay=weight_decay, grad_clip_norm=grad_clip_norm
    )
    optim = client.optim_step(adam)
    out = fb.result()
    optim.result()
    diff = n = 0.0
    for datum, output in zip(datums, out.loss_fn_outputs or [], strict=False):
        trainer = output["logprobs"].to_numpy() if "logprobs" in output else None
        if trainer is None:
            continue
        mask = datum.loss_fn_inputs["advantages"].to_numpy() != 0
        sampler = datum.loss_fn_inputs["logprobs"].to_numpy()
        diff += float((sampler[mask] - trainer[mask]).sum())
        n += float(mask.sum())
    loss = float(out.metrics.get("loss:sum", 0.0))
    if not math.isfinite(loss):
        raise TrainingError(f"RL step diverged: loss {loss} at learning rate {lr:.3g}")
    return {
        "loss": loss / n if n else loss,
        "kl": diff / n if n else 0.0,
        "tokens": float(sum(d.model_input.length for d in datums)),
    }
