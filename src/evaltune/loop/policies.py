"""Hyperparameter policies: what changes between rounds, given what the last rounds showed.

A ``Plan`` is one round's learning rate, steps and LoRA rank (and, after a broken guard, the
checkpoint to restart from). Policies are applied in the configured order, each a ``Policy``:
a small function ``(plan, context) -> (plan, note)`` registered by name in ``POLICIES``:

- ``lr_decay``: the learning rate × ``loop.lr_decay``;
- ``capacity``: when the adapter has fewer trainable parameters than the training data has
  completion tokens, double the rank (up to ``loop.max_rank``). A new rank is a new adapter, so
  that round trains a fresh adapter on all the data selected so far;
- ``more_steps``: while validation loss still falls, steps × ``loop.steps_growth`` (capped);
- ``bayes``: an Optuna TPE study proposes the learning rate from the rounds so far (each
  round's learning rate factor is a trial, its gain in target score the value);
- ``rl_on_plateau``: when SFT rounds stop raising the target score and a target suite has a
  verifiable grader, the next rounds train with RL (rewards from that grader).

A round that broke a guard is handled before any policy: the next round restarts from the best
round that held every guard, with the learning rate × ``loop.guard_backoff``. So is a round whose
target score fell significantly below the best round's (``vs_best`` verdict ``worse``, a paired
test on the same items; ``loop.rollback``): it restarts from the best trained round the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from evaltune.loop.decide import SuiteRule, choose_best, guards_hold, target_score
from evaltune.loop.state import baseline_of

__all__ = [
    "POLICIES",
    "Plan",
    "Policy",
    "PolicyContext",
    "capacity_advice",
    "lora_parameter_count",
    "next_plan",
]

Round = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    lr: float
    steps: int
    rank: int
    restart_from: str | None = None  # a save_state path; None = continue the current adapter
    fresh_adapter: bool = False  # True: a new adapter (new rank, or no good round to go back to)
    method: str = "sft"  # sft | rl | dpo | distill (loop/methods.py)


def lora_parameter_count(
    facts: Mapping[str, Any], rank: int, train_attn: bool, train_mlp: bool, train_unembed: bool
) -> int | None:
    """Trainable LoRA parameters, ``rank × (in + out)`` per adapted matrix, from config sizes;
    ``None`` when the backend does not report them."""
    h, layers = facts.get("hidden_size"), facts.get("num_hidden_layers")
    if not h or not layers:
        return None
    heads = facts.get("num_attention_heads") or 1
    kv = facts.get("num_key_value_heads") or heads
    head_dim = facts.get("head_dim") or h // heads
    inter = facts.get("intermediate_size") or 4 * h
    per_layer = 0
    if train_attn:
        q, k = heads * head_dim, kv * head_dim
        per_layer += (h + q) + 2 * (h + k) + (q + h)
    if train_mlp:
        per_layer += 3 * (h + inter)
    total = rank * per_layer * layers
    if train_unembed and facts.get("vocab_size"):
        total += rank * (h + facts["vocab_size"])
    return total


def capacity_advice(params: int | None, completion_tokens: int) -> str:
    if params is None:
        return "LoRA capacity: the backend does not report model sizes; no check"
    verdict = (
        "enough for the data"
        if params >= completion_tokens
        else "fewer than the completion tokens: consider a higher rank "
        "(the `capacity` policy does this between rounds)"
    )
    return (
        f"LoRA capacity: {params:,} trainable parameters for {completion_tokens:,} "
        f"training completion tokens — {verdict}"
    )


def _bayes_lr(
    base_lr: float,
    rounds: Sequence[Round],
    rules: Sequence[SuiteRule],
    settings: Mapping[str, Any],
) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    low, high = settings["lr_min_factor"], settings["lr_max_factor"]
    dist = optuna.distributions.FloatDistribution(low, high, log=True)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=settings["seed"])
    )
    # Each trial's value is its gain over the round before it (the baseline for round 1).
    baseline = baseline_of(rounds)
    previous = target_score(baseline, rules) if baseline else 0.0
    for r in (r for r in rounds if r["round"] > 0):
        factor = min(max(r["lr"] / base_lr, low), high)
        score = target_score(r, rules)
        study.add_trial(
            optuna.trial.create_trial(
                params={"lr_factor": factor},
                distributions={"lr_factor": dist},
                value=score - previous,
            )
        )
        previous = score
    trial = study.ask({"lr_factor": dist})
    return base_lr * float(trial.params["lr_factor"])


@dataclass(frozen=True)
class PolicyContext:
    """What a policy may read: the rounds so far, the suite rules, the loop's settings."""

    rounds: Sequence[Round]
    rules: Sequence[SuiteRule]
    loop: Mapping[str, Any]
    base_lr: float
    lora_params: int | None
    completion_tokens: int
    verifiable: tuple[str, ...] = ()  # target suites whose grader a program computes

    @property
    def trained(self) -> list[Round]:
        return [r for r in self.rounds if r["round"] > 0]


class Policy(Protocol):
    """One hyperparameter policy: the next plan, and a note when it changed something."""

    def __call__(self, plan: Plan, ctx: PolicyContext) -> tuple[Plan, str | None]: ...


def lr_decay(plan: Plan, ctx: PolicyContext) -> tuple[Plan, str | None]:
    if ctx.loop["lr_decay"] == 1.0:
        return plan, None
    plan = replace(plan, lr=plan.lr * ctx.loop["lr_decay"])
    return plan, f"lr_decay: lr → {plan.lr:.3g}"


def capacity(plan: Plan, ctx: PolicyContext) -> tuple[Plan, str | None]:
    if ctx.lora_params is None or ctx.lora_params >= ctx.completion_tokens:
        return plan, None
    rank = min(plan.rank * 2, ctx.loop["max_rank"])
    if rank <= plan.rank:
        return plan, None
    note = (
        f"capacity: {ctx.lora_params:,} LoRA parameters < {ctx.completion_tokens:,} "
        f"completion tokens: rank → {rank} (a fresh adapter)"
    )
    return replace(plan, rank=rank, fresh_adapter=True), note


def more_steps(plan: Plan, ctx: PolicyContext) -> tuple[Plan, str | None]:
    trained = ctx.trained
    if len(trained) < 2:
        return plan, None
    now, before = trained[-1].get("val_nll"), trained[-2].get("val_nll")
    if now is None or before is None or now >= before:
        return plan, None
    steps = min(math.ceil(plan.steps * ctx.loop["steps_growth"]), ctx.loop["max_steps_per_round"])
    if steps <= plan.steps:
        return plan, None
    note = f"more_steps: validation loss fell ({before:.3f} → {now:.3f}): steps → {steps}"
    return replace(plan, steps=steps), note


def bayes(plan: Plan, ctx: PolicyContext) -> tuple[Plan, str | None]:
    if not ctx.trained:
        return plan, None
    lr = _bayes_lr(ctx.base_lr, ctx.rounds, ctx.rules, ctx.loop["bayes"])
    return replace(plan, lr=lr), f"bayes: Optuna proposes lr {lr:.3g}"


def rl_on_plateau(plan: Plan, ctx: PolicyContext) -> tuple[Plan, str | None]:
    """SFT → RL once the last SFT round did not raise the target score above every round before
    it (one round before the plateau stop would end the run), when there are rewards to be had:
    a target suite with a verifiable grader."""
    if plan.method != "sft" or not ctx.verifiable:
        return plan, None
    sft = [r for r in ctx.trained if r.get("method", "sft") == "sft"]
    baseline = baseline_of(ctx.rounds)
    before = [*([baseline] if baseline else []), *sft[:-1]]
    if not sft or not before:
        return plan, None
    best_before = max(target_score(r, ctx.rules) for r in before)
    last = target_score(sft[-1], ctx.rules)
    if last > best_before + ctx.loop["min_improvement"]:
        return plan, None
    note = (
        f"rl_on_plateau: SFT round {sft[-1]['round']} did not raise the target score "
        f"({last:.3f}, best before {best_before:.3f}): RL from now on, rewards from "
        f"{ctx.verifiable[0]}'s grader"
    )
    return replace(plan, method="rl"), note


# The names a config may list in `loop.policies`: the one list (loop.context hands it to the
# config, which checks against it).
POLICIES: dict[str, Policy] = {
    "lr_decay": lr_decay,
    "capacity": capacity,
    "more_steps": more_steps,
    "bayes": bayes,
    "rl_on_plateau": rl_on_plateau,
}


def next_plan(
    current: Plan,
    rounds: Sequence[Round],
    rules: Sequence[SuiteRule],
    *,
    policies: Sequence[str],
    loop: Mapping[str, Any],
    base_lr: float,
    lora_params: int | None,
    completion_tokens: int,
    verifiable: Sequence[str] = (),
) -> tuple[Plan, list[str]]:
    """The plan for the round after ``rounds[-1]``, and one note per change made."""
    notes: list[str] = []
    plan = replace(current, restart_from=None, fresh_adapter=False)
    last = rounds[-1]
    baseline = baseline_of(rounds)
    trained = [r for r in rounds if r["round"] > 0]
    if not guards_hold(last, baseline, rules):
        good = [r for r in trained if guards_hold(r, baseline, rules)]
        best = choose_best([*([baseline] if baseline else []), *good], rules) if good else None
        plan = replace(
            plan,
            lr=plan.lr * loop["guard_backoff"],
            # the adapter restored has the rank it was trained with
            rank=int(best.get("rank") or plan.rank) if best else plan.rank,
            restart_from=best["checkpoint"]["state"] if best else None,
            fresh_adapter=best is None,
        )
        where = f"round {best['round']}" if best else "a fresh adapter"
        notes.append(
            f"round {last['round']} broke a guard: restart from {where}, "
            f"lr × {loop['guard_backoff']}"
        )
        return plan, notes
    vs_best = last.get("vs_best") or {}
    if loop.get("rollback") and vs_best.get("verdict") == "worse":
        good = [r for r in trained if guards_hold(r, baseline, rules) and r is not last]
        best = choose_best(good, rules) if good else None
        if best is not None:
            plan = replace(
                plan,
                lr=plan.lr * loop["guard_backoff"],
                rank=int(best.get("rank") or plan.rank),
                restart_from=best["checkpoint"]["state"],
            )
            notes.append(
                f"round {last['round']} fell below round {vs_best['against']} "
                f"({vs_best['delta']:+.2f}, p={vs_best['p_value']:.2f}): restart from round "
                f"{best['round']}, lr × {loop['guard_backoff']}"
            )
            return plan, notes
    context = PolicyContext(
        rounds, rules, loop, base_lr, lora_params, completion_tokens, tuple(verifiable)
    )
    for name in policies:
        plan, note = POLICIES[name](plan, context)
        if note:
            notes.append(note)
    return plan, notes
