"""Where the next round's data budget goes: a bandit over tags, read in one module.

Each tag of the target suites is modelled by a learning curve: every training example of the
tag closes a fraction ``rate`` of the gap between its accuracy and 1,
``accuracy(m) = 1 − (1 − before)·exp(−rate·m)``. After every evaluation the rate is estimated
from the tag's own evidence, *optimistically*: from the upper end (one standard error, Wilson)
of its best accuracy since its first examples, so a tag measured on a few items is not written
off by one unlucky round, while a tag that took many examples without moving gets a rate that
falls with every example it took. A tag with no examples yet gets ``PRIOR_RATE × explore``.

The *weight* of a tag is the accuracy its next example is expected to add,
``(1 − accuracy)·exp(−rate·pending)·(1 − exp(−rate))`` (``pending``: examples already on
their way, the seed set before round 1). The budget (``selection.budget``) is a ceiling, not a
quota: only tags whose weight is at least ``FUND_FLOOR`` × the best tag's are funded, and the
examples go one at a time to the funded tag whose next example is worth most (returns
diminish as a tag takes more), so a fast learner takes its pool at once and a tag that took
examples without moving gets nothing while better ones exist.

Statuses say why, for the report and the replay order:

- ``untried``: no training example of the tag yet (the prior rate: exploration).
- ``trying``: it has examples, but fewer than ``stall_rounds`` evaluated rounds since its first
  ones, and no significant gain yet.
- ``responsive``: its accuracy rose significantly over its accuracy before its first examples
  (a one-sided two-proportion test at ``z``, 1.64 by default: 95 %).
- ``stalled``: it took examples for ``stall_rounds`` evaluated rounds and did not move although
  its own examples are fitted (their mean training loss at most ``fitted_loss``). Weight 0 (its
  examples are still replayed, last); reported as needing a different intervention (a larger
  model, another format, more capacity), and it stays stalled until something else changes (a
  new rank or method). A tag whose own training loss is still above ``fitted_loss`` has not
  been learned yet, so no gain says nothing about it: it stays ``trying`` (flagged
  ``underfit``) for up to ``2 × stall_rounds`` rounds.
- ``ceiling``: accuracy 1: nothing left to gain. Weight 0; its examples are replayed so it stays
  learned.
- ``regressed`` is a flag on top of a status: accuracy fell below the tag's best by more than
  noise band (``band`` standard errors, 1 by default); its examples are replayed first.
- ``underfit`` is a flag too: the tag has examples, is neither at its ceiling nor stalled, and
  the last round's mean training loss on them (``train.per_tag_loss``) is above
  ``fitted_loss``; a responsive one has every example replayed, on top of the usual replay.

A tag whose pool is empty gets no budget unless a synthesiser writes examples for it. A target
suite whose items carry no tags is one tag, ``ALL``. Everything here is a pure function of
round records and counts, so each reaction is testable on a hand-built history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from evaltune.evals import wilson_interval

__all__ = [
    "ALL",
    "PRIOR_RATE",
    "STATUSES",
    "TagState",
    "allocate_budget",
    "gap_rate",
    "last_train_loss",
    "marginal_gain",
    "tag_counts",
    "tag_states",
    "two_proportion_z",
    "with_pending",
]

STATUSES = ("untried", "trying", "responsive", "stalled", "ceiling")
ALL = "(all)"  # the one tag of a suite whose items carry none
Round = dict[str, Any]
PRIOR_RATE = 0.1  # before any evidence: each example closes a tenth of the gap
BOUND_Z = 1.0  # rates are read from the best accuracy's bounds at one standard error


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
    rate: float = 0.0  # optimistic share of the remaining gap one more example closes
    rate_low: float = 0.0  # pessimistic share (0 without evidence of its own)
    pending: int = 0  # examples of it already planned and not yet evaluated (the seed set)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gap_rate(before: float, after: float, examples: int) -> float:
    """The rate of ``accuracy(m) = 1 − (1 − before)·exp(−rate·m)`` through ``after`` at
    ``examples``: ``−ln((1 − after) / (1 − before)) / examples``, 0 when it did not rise."""
    if examples <= 0 or after <= before or before >= 1.0:
        return 0.0
    return -math.log((1.0 - after) / (1.0 - before)) / examples


def marginal_gain(state: TagState, taken: int = 0, *, low: bool = False) -> float:
    """Accuracy the tag's next example is expected to add after ``taken`` more this round, at
    its optimistic rate (``low``: at its pessimistic one)."""
    rate = state.rate_low if low else state.rate
    if state.status in ("stalled", "ceiling") or rate <= 0:
        return 0.0
    decay = math.exp(-rate * (state.pending + taken))
    return (1.0 - state.accuracy) * decay * (1.0 - math.exp(-rate))


def with_pending(state: TagState, count: int) -> TagState:
    """An untried tag with ``count`` examples already planned (the seed set before round 1):
    its next example is worth less by the curve, and it counts as ``trying``."""
    state = replace(
        state, status="trying", trained=count, pending=count, note="the seed set covers it"
    )
    return replace(state, weight=marginal_gain(state))


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
        rate, rate_low = PRIOR_RATE * explore, 0.0
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
                # the best accuracy's bounds, below 1 (a perfect score on n items is not an
                # infinitely fast learner)
                bounds = wilson_interval(bc, bn, z=BOUND_Z)
                rate = gap_rate(before, min(bounds[1], 1.0 - 0.5 / bn), trained)
                rate_low = gap_rate(before, min(bounds[0], 1.0 - 0.5 / bn), trained)
        loss = losses.get(tag) if first is not None else None
        unfitted = fitted_loss is not None and loss is not None and loss > fitted_loss
        if acc >= 1.0:
            status, note = "ceiling", "learned: replay only"
        elif tag in frozen:
            status, note = "stalled", "stalled earlier; nothing has changed since"
        elif first is None:
            status, note = "untried", "no examples yet: explore"
        elif zscore is not None and zscore >= z and (gain or 0.0) > 0:
            status, note = "responsive", f"rose {gain:+.2f} ({zscore:.1f} se)"
        elif rounds_since >= stall_rounds and unfitted and rounds_since < 2 * stall_rounds:
            status = "trying"
            note = (
                f"no gain yet, but its own training loss is {loss:.2f} (> {fitted_loss:g}): "
                "under-fitted, not stalled: more passes over its examples"
            )
        elif rounds_since >= stall_rounds:
            status = "stalled"
            note = (
                f"{trained} examples over {rounds_since} rounds did not move it"
                + (f" (training loss {loss:.2f})" if loss is not None else "")
                + ": needs a different intervention (a larger model, another format, more "
                "capacity)"
            )
        else:
            status, note = "trying", "too early to tell"
        underfit = unfitted and status in ("trying", "responsive")
        state = TagState(
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
            0.0,
            note,
            train_loss=loss,
            underfit=underfit,
            rate=rate,
            rate_low=rate_low,
        )
        states[tag] = replace(state, weight=marginal_gain(state))
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
    """Examples per tag for the next round, at most ``budget`` and what ``available`` has.

    Successive elimination: a tag with evidence of its own is funded unless even its
    optimistic next example is worth less than the pessimistic next example of the best tag
    (among all tags, also those with nothing left to take); a tag without any (untried, or
    only the seed set so far) is always funded: exploration. Each example then goes to the
    funded tag whose next one is worth most, at the optimistic rate, with returns diminishing
    as a tag takes more (ties: the tag first in name order)."""
    sure = max((marginal_gain(s, low=True) for s in states.values()), default=0.0)
    funded = {t for t, s in states.items() if s.weight > 0 and (s.gain is None or s.weight >= sure)}
    quota = {t: 0 for t in funded}
    for _ in range(budget):
        open_tags = [t for t in sorted(funded) if quota[t] < available.get(t, 0)]
        if not open_tags:
            break
        pick = max(open_tags, key=lambda t: marginal_gain(states[t], quota[t]))
        quota[pick] += 1
    return {t: q for t, q in quota.items() if q}
