"""Choosing pool examples for the next round: targeted at the failures, or random.

Targeted selection scores each unused pool example by two things and takes the best ``budget``:

- how weak its tag is: ``1 - accuracy`` of the tag on the target suites (the weakest of the
  example's tags counts; a tag no eval measures scores 0);
- how close it is to what failed: the highest cosine similarity between the example's prompt and
  any failed eval prompt.

``score = tag_weight × weakness + (1 - tag_weight) × similarity``. Random selection draws the
same number uniformly, as the control a claim about targeting needs.

Contamination guard: before anything is selected, pool examples whose id or normalised prompt
matches an eval item are removed (and reported), so an eval item can never become training data.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evaltune.data import Example
from evaltune.data.dedup import normalise_text
from evaltune.loop.analysis import text_vectors

__all__ = ["Selection", "clean_pool", "select_random", "select_targeted", "tag_weakness"]


@dataclass
class Selection:
    strategy: str
    chosen: list[Example] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    method: str = ""

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "id": e.id,
                "tags": list(e.tags),
                "prompt": e.prompt,
                "score": round(self.scores.get(e.id, 0.0), 4),
            }
            for e in self.chosen
        ]


def clean_pool(
    pool: Sequence[Example], evals: Sequence[Example]
) -> tuple[list[Example], list[str]]:
    """The pool without eval items (same id or same normalised prompt); the dropped ids."""
    ids = {e.id for e in evals}
    prompts = {normalise_text(e.prompt) for e in evals}
    kept, dropped = [], []
    for ex in pool:
        if ex.id in ids or normalise_text(ex.prompt) in prompts:
            dropped.append(ex.id)
        else:
            kept.append(ex)
    return kept, dropped


def tag_weakness(per_tag: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """``1 - accuracy`` per tag, averaged over suites: ``per_tag`` is {suite: {tag: acc}}."""
    sums: dict[str, list[float]] = {}
    for tags in per_tag.values():
        for tag, acc in tags.items():
            sums.setdefault(tag, []).append(1.0 - float(acc))
    return {tag: sum(v) / len(v) for tag, v in sums.items()}


def select_targeted(
    pool: Sequence[Example],
    failed_prompts: Sequence[str],
    weakness: Mapping[str, float],
    budget: int,
    *,
    tag_weight: float = 0.5,
    similarity: str = "auto",
) -> Selection:
    if not pool or budget <= 0:
        return Selection("targeted")
    tag_part = [max((weakness.get(t, 0.0) for t in ex.tags), default=0.0) for ex in pool]
    sim_part = [0.0] * len(pool)
    method = ""
    if failed_prompts:
        vectors, method = text_vectors(
            [ex.prompt for ex in pool] + list(failed_prompts), similarity
        )
        pool_vecs, fail_vecs = vectors[: len(pool)], vectors[len(pool) :]
        sim_part = [float(v) for v in (pool_vecs @ fail_vecs.T).max(axis=1)]
    scores = {
        ex.id: tag_weight * t + (1.0 - tag_weight) * s
        for ex, t, s in zip(pool, tag_part, sim_part, strict=True)
    }
    # Ties (e.g. identical scores) break on pool order, so a run is reproducible.
    order = sorted(range(len(pool)), key=lambda i: (-scores[pool[i].id], i))
    chosen = [pool[i] for i in order[:budget]]
    return Selection("targeted", chosen, {e.id: scores[e.id] for e in chosen}, method)


def select_random(pool: Sequence[Example], budget: int, seed: int) -> Selection:
    rng = random.Random(seed)
    chosen = rng.sample(list(pool), min(budget, len(pool))) if pool else []
    return Selection("random", chosen)
