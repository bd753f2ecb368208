"""Decisions between rounds: are the targets met, should the loop stop, what comes next, and
which round is the best. Pure functions on plain data (round records as dicts), so every rule
is testable without a model.

A round record holds ``evals``: ``{suite: {"metrics": {metric: value, ...}, ...}}``. A *target*
is met when the suite's metric reaches its threshold; a *guard* holds when its metric has not
moved more than ``tolerance`` the wrong way from the baseline (round 0). "Reaches" and "the
wrong way" follow ``SuiteRule.higher_is_better``: for a lower-is-better metric (NLL) a target is
met at or below its threshold and a guard breaks when the metric rises past the tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evaltune.loop.state import baseline_of

__all__ = [
    "Decision",
    "SuiteRule",
    "choose_best",
    "decide_next",
    "guards_hold",
    "target_score",
    "targets_met",
]

Round = dict[str, Any]


@dataclass(frozen=True)
class SuiteRule:
    name: str
    metric: str
    role: str  # "target" | "guard"
    threshold: float | None = None
    tolerance: float = 0.0
    higher_is_better: bool = True

    def better(self, value: float) -> float:
        """``value`` on a scale where higher is better (negated for lower-is-better)."""
        return value if self.higher_is_better else -value


@dataclass(frozen=True)
class Decision:
    stop: bool
    reason: str  # target_met | max_rounds | budget | plateau | continue
    next_lr: float | None = None
    note: str = ""


def _metric(round_: Round, rule: SuiteRule) -> float | None:
    suite = round_.get("evals", {}).get(rule.name)
    if not suite:
        return None
    value = suite.get("metrics", {}).get(rule.metric)
    return None if value is None else float(value)


def targets_met(round_: Round, rules: Sequence[SuiteRule]) -> bool:
    targets = [r for r in rules if r.role == "target"]
    if not targets:
        return False
    for rule in targets:
        value = _metric(round_, rule)
        if value is None or rule.threshold is None:
            return False
        if rule.better(value) < rule.better(rule.threshold) - 1e-12:
            return False
    return True


def guards_hold(round_: Round, baseline: Round | None, rules: Sequence[SuiteRule]) -> bool:
    if baseline is None:
        return True
    for rule in rules:
        if rule.role != "guard":
            continue
        now, base = _metric(round_, rule), _metric(baseline, rule)
        if now is None or base is None:
            continue
        if rule.better(now) < rule.better(base) - rule.tolerance - 1e-12:
            return False
    return True


def target_score(round_: Round, rules: Sequence[SuiteRule]) -> float:
    """Mean of the target metrics (0 when none were measured): what "better" means. A
    lower-is-better metric counts negated, so a higher score is always the better round."""
    values = [(r, _metric(round_, r)) for r in rules if r.role == "target"]
    present = [r.better(v) for r, v in values if v is not None]
    return sum(present) / len(present) if present else 0.0


def decide_next(
    rounds: Sequence[Round],
    rules: Sequence[SuiteRule],
    *,
    max_rounds: int,
    lr: float,
    lr_decay: float,
    stop_on_target: bool = True,
    plateau_rounds: int = 0,
    min_improvement: float = 0.0,
    spent: Mapping[str, float] | None = None,
    limits: Mapping[str, float | None] | None = None,
) -> Decision:
    """What to do after the last of ``rounds`` (round 0 = baseline, if present).

    ``spent`` and ``limits`` share the keys ``steps``, ``tokens``, ``seconds``: the run stops
    with ``budget`` once any limit would be passed (``spent`` is projected to the end of the
    next round by the caller).
    """
    last = rounds[-1]
    k = int(last["round"])
    baseline = baseline_of(rounds)
    if stop_on_target and k > 0 and targets_met(last, rules) and guards_hold(last, baseline, rules):
        return Decision(True, "target_met", note=f"round {k} met every target")
    if k >= max_rounds:
        return Decision(True, "max_rounds", note=f"reached max_rounds={max_rounds}")
    for key, limit in (limits or {}).items():
        used = (spent or {}).get(key, 0.0)
        if limit is not None and used > limit:
            return Decision(True, "budget", note=f"spent {used:g} {key} of a budget of {limit:g}")
    trained = [r for r in rounds if r["round"] > 0]
    # a change of method starts a new stretch: the plateau window holds one method's rounds
    method = last.get("method", "sft")
    stretch = 0
    for r in reversed(trained):
        if r.get("method", "sft") != method:
            break
        stretch += 1
    if plateau_rounds and len(trained) > plateau_rounds and stretch >= plateau_rounds:
        best_before = max(target_score(r, rules) for r in trained[:-plateau_rounds])
        recent = max(target_score(r, rules) for r in trained[-plateau_rounds:])
        if recent < best_before + min_improvement:
            return Decision(
                True,
                "plateau",
                note=f"no gain of {min_improvement} in the last {plateau_rounds} rounds",
            )
    next_lr = lr * lr_decay
    note = f"train round {k + 1}"
    if lr_decay != 1.0:
        note += f" with lr {lr:.3g} → {next_lr:.3g} (decay {lr_decay})"
    return Decision(False, "continue", next_lr=next_lr, note=note)


def choose_best(rounds: Sequence[Round], rules: Sequence[SuiteRule]) -> Round | None:
    """The best trained round, or None when none qualifies.

    A round that broke a guard is never promoted, however well it scores on the targets.
    Among the rest: targets met first, then the target score, then the lower validation loss,
    then the earlier round.
    """
    baseline = baseline_of(rounds)
    trained = [
        r for r in rounds if r["round"] > 0 and r.get("evals") and guards_hold(r, baseline, rules)
    ]
    if not trained:
        return None

    def key(r: Round) -> tuple[bool, float, float, int]:
        val = r.get("val_nll")
        return (
            targets_met(r, rules),
            target_score(r, rules),
            -(val if val is not None else float("inf")),
            -int(r["round"]),
        )

    return max(trained, key=key)
