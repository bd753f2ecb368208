"""The learning-rate probe for ``learning_rate: auto``: a few steps at each candidate, judged on
held-out training data.

The model-size heuristic (``train.auto_learning_rate``) is a starting point, not an answer: on
a small, easy set it memorises in a handful of steps. Before round 1 the probe splits the
training datums 80/20 (seeded), trains a fresh adapter ``steps`` steps at each
``factor × heuristic`` and keeps the learning rate with the lowest validation NLL on the 20 %
(ties: the lower learning rate; one that diverges scores NaN and is never chosen). Eval suites
are never touched, so the choice cannot leak them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tinker import types

from evaltune.backends.contract import TrainingClient
from evaltune.errors import TrainingError
from evaltune.evals import validation_nll
from evaltune.train import run_sft_round

__all__ = ["ProbeResult", "choose_probe_lr", "probe_learning_rate", "split_for_probe"]

MIN_EXAMPLES = 5


@dataclass(frozen=True)
class ProbeResult:
    chosen: float
    base: float
    candidates: list[dict[str, float]] = field(default_factory=list)  # lr, factor, val_nll
    held_out: int = 0
    steps: int = 0
    tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def split_for_probe(
    datums: Sequence[types.Datum], seed: int
) -> tuple[list[types.Datum], list[types.Datum]]:
    """(train, held-out): a seeded 80/20 split, at least one held-out datum."""
    order = list(range(len(datums)))
    random.Random(seed).shuffle(order)
    n_out = max(1, round(0.2 * len(datums)))
    return [datums[i] for i in order[n_out:]], [datums[i] for i in order[:n_out]]


def choose_probe_lr(candidates: Sequence[dict[str, float]], fallback: float) -> float:
    """The candidate with the lowest finite validation NLL; ties go to the lower rate."""
    finite = [c for c in candidates if math.isfinite(c["val_nll"])]
    if not finite:
        return fallback
    return min(finite, key=lambda c: (round(c["val_nll"], 6), c["lr"]))["lr"]


def probe_learning_rate(
    make_client: Callable[[], TrainingClient],
    datums: Sequence[types.Datum],
    base_lr: float,
    *,
    factors: Sequence[float],
    steps: int,
    batch_size: int,
    seed: int,
    on_candidate: Callable[[dict[str, float]], None] | None = None,
) -> ProbeResult | None:
    """Probe ``factors × base_lr``; None when there are too few datums to hold some out."""
    if len(datums) < MIN_EXAMPLES:
        return None
    train, held_out = split_for_probe(datums, seed)
    candidates, tokens = [], 0
    for factor in sorted(set(factors)):
        client = make_client()
        try:
            result = run_sft_round(
                client,
                train,
                steps=steps,
                batch_size=batch_size,
                learning_rate=base_lr * factor,
                seed=seed,
            )
        except TrainingError:  # this rate diverged: a candidate never chosen, not a failed run
            nll, train_loss = math.nan, math.nan
        else:
            tokens += result.tokens
            nll = validation_nll(client, held_out).mean_nll
            train_loss = result.final_loss or math.nan
        cand = {
            "factor": factor,
            "lr": base_lr * factor,
            "val_nll": float(nll),
            "train_loss": float(train_loss),
        }
        candidates.append(cand)
        if on_candidate:
            on_candidate(cand)
    chosen = choose_probe_lr(candidates, base_lr)
    return ProbeResult(chosen, base_lr, candidates, len(held_out), steps, tokens)
