"""Where the next round's data budget goes: a bandit over tags, read in one module.

After every evaluation each tag of the target suites gets a *status* from its evidence, and
the next round's budget (``selection.budget``, a ceiling, not a quota) is split by weight:

- ``untried``: no training example of the tag yet. Weight ``headroom × explore``: every tag
  gets an exploration share before anything is known about it.
- ``trying``: it has examples, but fewer than ``stall_rounds`` evaluated rounds since its first
  ones, and no significant gain yet. Weight ``headroom``.
- ``responsive``: its accuracy rose significantly over its accuracy before its first
  examples (a one-sided two-proportion test at ``z``, 1.64 by default: 95 %). Weight
  ``headroom × (1 + gain / se)``, capped at 3 × headroom: the clearer the response, the more
  budget.
- ``stalled``: it took examples for ``stall_rounds`` evaluated rounds and did not move although
  its own examples are fitted (their mean training loss at most ``fitted_loss``). Weight 0 (its
  examples are still replayed, last); reported as needing a different intervention (a larger
  model, another format, more capacity), and it stays stalled until something else changes (a
  new rank or method). A tag whose own training loss is still above ``fitted_loss`` has not
  been learned yet, so no gain says nothing about it: it stays ``trying`` (flagged
  ``underfit``, its examples replayed first) for up to ``2 × stall_rounds`` rounds.
- ``ceiling``: accuracy is 1, or its Wilson lower bound is at the suite's threshold. Weight 0;
  its examples are replayed so it stays learned.
- ``regressed`` is a flag on top of a status: accuracy fell below the tag's best by more than
  noise band (``band`` standard errors, 1 by default); its examples are replayed first.
- ``underfit`` is a flag too: the tag has examples, is neither at its ceiling nor stalled, and
  the last round's mean training loss on them (``train.per_tag_loss``) is above
  ``fitted_loss``: every one of its examples is replayed, on top of the usual replay.

``headroom`` is ``1 − accuracy``. A tag whose pool is empty gets no budget unless a
synthesiser writes examples for it. A target suite whose items carry no tags is one tag,
``ALL``. Everything here is a pure function of round records and
counts, so each reaction is testable on a hand-built history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from evaltune.evals import wilson_interval

__all__ = [
    "ALL",
    "STATUSES",
    "TagState",
    "allocate_budget",
    "last_train_loss",
    "tag_counts",
    "tag_states",
    "two_proportion_z",
]

STATUSES = ("untried", "trying", "responsive", "stalled", "ceiling")
ALL = "(all)"  # the one tag of a suite whose items carry none
Round = dict[str, Any]


@dataclass(frozen=True)
class TagState:
    tag: str
    status: str  # one of STATUSES
    accuracy: float
    n: int
    ci_low: float
    ci_high: float
    trained: int  # training examples of this tag so far
    before: float | None  # accuracy before its first training examples
    gain: float | None  # best accuracy since then − before
    z: float | None  # gain over its standard error
    regressed: bool = False
    weight: float = 0.0
    note: str = ""
    train_loss: float | None = None  # last round's mean training loss on its examples
    underfit: bool = False  # that loss is above ``fitted_loss``: not learned yet

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def two_proportion_z(p1: float, n1: int, p2: float, n2: int) -> float:
    """``(p2 − p1) / se`` with the pooled standard error (0 when it is undefined)."""
    if n1 <= 0 or n2 <= 0:
        return 0.0
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(max(pooled * (1 - pooled) * (1 / n1 + 1 / n2), 0.0))
    if se == 0.0:
        return 0.0 if p1 == p2 else math.copysign(math.inf, p2 - p1)
    return (p2 - p1) / se


def tag_counts(round_: Round, suites: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``{tag: (correct, n)}`` of a round record, summed over ``suites``; a suite whose items
    carry no tags counts as one tag, ``ALL``."""
    out: dict[str, tuple[int, int]] = {}
    for suite in suites:
        entry = round_.get("evals", {}).get(suite, {})
        per_tag = entry.get("per_tag") or {}
        if not per_tag and "accuracy" in entry.get("metrics", {}):
            per_tag = {ALL: entry["metrics"]}
        for tag, stats in per_tag.items():
            n = int(stats.get("n", 0))
            correct = round(float(stats["accuracy"]) * n)
            c0, n0 = out.get(tag, (0, 0))
            out[tag] = (c0 + correct, n0 + n)
    return out


def tag_states(
    rounds: Sequence[Round],
    suites: Sequence[str],
    trained_by_round: Mapping[int, Mapping[str, int]],
    *,
    threshold: float | None,
    stall_rounds: int = 2,
    z: float = 1.64,
    band: float = 1.0,
    explore: float = 1.0,
    frozen: frozenset[str] = frozenset(),
    fitted_loss: float | None = None,
) -> dict[str, TagState]:
    """Every target tag's status after ``rounds[-1]``.

    ``trained_by_round[k]`` counts the training examples of each tag that round ``k`` trained
    on for the first time (round 1 includes the seed data). ``frozen``: tags marked stalled
    earlier that nothing has changed for since. ``fitted_loss``: the mean training loss (nats
    per token) at or below which a tag's own examples count as fitted (None: never consulted).
    """
    evaluated = [r for r in rounds if r.get("evals")]
    if not evaluated:
        return {}
    last = evaluated[-1]
    now = tag_counts(last, suites)
    losses = last_train_loss(rounds)
    states: dict[str, TagState] = {}
    for tag, (correct, n) in sorted(now.items()):
        acc = correct / n if n else 0.0
        low, high = wilson_interval(correct, n)
        first = min((k for k, c in trained_by_round.items() if c.get(tag)), default=None)
        trained = sum(c.get(tag, 0) for c in trained_by_round.values())
        history = [(int(r["round"]), tag_counts(r, suites).get(tag)) for r in evaluated]
        history = [(k, c) for k, c in history if c and c[1]]
        best = max((c / m for _, (c, m) in history), default=acc)
        best_n = max((m for _, (c, m) in history if c / m == best), default=n)
        regressed = two_proportion_z(best, best_n, acc, n) < -band and acc < best
        before = gain = zscore = None
        rounds_since = 0
        if first is not None:
            prior = [(k, c) for k, c in history if k < first]
            since = [(k, c) for k, c in history if k >= first]
            rounds_since = len(since)
            if prior and since:
                pc, pn = prior[-1][1]
                before = pc / pn
                bc, bn = max((c for _, c in since), key=lambda c: c[0] / c[1])
                gain = bc / bn - before
                zscore = two_proportion_z(before, pn, bc / bn, bn)
        headroom = 1.0 - acc
        loss = losses.get(tag) if first is not None else None
        unfitted = fitted_loss is not None and loss is not None and loss > fitted_loss
        at_ceiling = acc >= 1.0 or (threshold is not None and low >= threshold)
        if at_ceiling:
            status, weight, note = "ceiling", 0.0, "learned: replay only"
        elif tag in frozen:
            status, weight, note = "stalled", 0.0, "stalled earlier; nothing has changed since"
        elif first is None:
            status, weight, note = "untried", headroom * explore, "no examples yet: explore"
        elif zscore is not None and zscore >= z and (gain or 0.0) > 0:
            weight = min(headroom * (1.0 + zscore), 3.0 * headroom)
            status, note = "responsive", f"rose {gain:+.2f} ({zscore:.1f} se)"
        elif rounds_since >= stall_rounds and unfitted and rounds_since < 2 * stall_rounds:
            status, weight = "trying", headroom
            note = (
                f"no gain yet, but its own training loss is {loss:.2f} (> {fitted_loss:g}): "
                "under-fitted, not stalled: more passes over its examples"
            )
        elif rounds_since >= stall_rounds:
            status, weight = "stalled", 0.0
            note = (
                f"{trained} examples over {rounds_since} rounds did not move it"
                + (f" (training loss {loss:.2f})" if loss is not None else "")
                + ": needs a different intervention (a larger model, another format, more "
                "capacity)"
            )
        else:
            status, weight, note = "trying", headroom, "too early to tell"
        underfit = unfitted and status in ("trying", "responsive")
        states[tag] = TagState(
            tag,
            status,
            acc,
            n,
            low,
            high,
            trained,
            before,
            gain,
            zscore,
            regressed,
            weight,
            note,
            train_loss=loss,
            underfit=underfit,
        )
    return states


def last_train_loss(rounds: Sequence[Round]) -> dict[str, float]:
    """Each tag's mean training loss from the latest round record that trained on it."""
    out: dict[str, float] = {}
    for r in rounds:
        per_tag = (r.get("train") or {}).get("per_tag_loss") or {}
        out.update({t: float(v) for t, v in per_tag.items() if v is not None})
    return out


def allocate_budget(
    states: Mapping[str, TagState], available: Mapping[str, int], budget: int
) -> dict[str, int]:
    """Examples per tag for the next round: ``budget`` split by weight (largest remainders),
    each capped by what ``available`` has; what a capped tag cannot use goes to the others."""
    quota = {t: 0 for t in states}
    left = budget
    open_tags = {t for t, s in states.items() if s.weight > 0 and available.get(t, 0) > 0}
    while left > 0 and open_tags:
        total = sum(states[t].weight for t in open_tags)
        shares = {t: left * states[t].weight / total for t in open_tags}
        give = {t: min(math.floor(shares[t]), available[t] - quota[t]) for t in open_tags}
        rest = left - sum(give.values())
        for t in sorted(open_tags, key=lambda t: (-(shares[t] - math.floor(shares[t])), t)):
            if rest <= 0:
                break
            if give[t] < available[t] - quota[t]:
                give[t] += 1
                rest -= 1
        if not any(give.values()):
            break
        for t, g in give.items():
            quota[t] += g
            left -= g
        open_tags = {t for t in open_tags if quota[t] < available[t]}
    return {t: q for t, q in quota.items() if q}
