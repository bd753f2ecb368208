"""Compare two ``EvalResult``s sample by sample: what improved, what regressed, and whether the
change is more than noise.

Pure: two results in, a ``Comparison`` out (``to_dict`` is ``comparison.json``). Samples are
paired by id; only ids present in both results are compared, and the counts of the others are
reported, as is whether the two suite hashes agree (same questions, template, grader, renderer).

Per metric, on the shared samples:

- ``accuracy`` and every binary per-sample metric (``refusal_rate``, ``pass@1``, ...): the
  exact McNemar test on the discordant pairs (``significance.mcnemar_exact``);
- ``mean_score`` (when some score is fractional) and every other per-sample metric: the paired
  sign-flip permutation test on the differences (``significance.paired_permutation``); NLL is
  weighted by each sample's token count, as the suite's NLL is.

A change is ``improved`` or ``regressed`` when ``p < alpha`` and the difference points the
metric's good or bad way (``result.metric_direction``); otherwise ``not significant`` (or
``unchanged`` when equal). Per tag, the same for accuracy (NLL for an NLL suite).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from evaltune.errors import EvalError
from evaltune.evals.result import EvalResult, SampleRecord, metric_direction
from evaltune.evals.significance import mcnemar_exact, paired_permutation

__all__ = ["Comparison", "MetricChange", "compare_results"]

Pairs = Sequence[tuple[SampleRecord, SampleRecord]]


@dataclass(frozen=True)
class MetricChange:
    name: str
    a: float
    b: float
    delta: float  # b - a
    n: int  # paired samples the metric was computed on
    test: str  # "mcnemar_exact" | "paired_permutation"
    p_value: float
    verdict: str  # improved | regressed | not significant | unchanged
    higher_is_better: bool | None  # None: neither direction is better (e.g. token counts)
    wrong_to_right: int | None = None  # McNemar's discordant counts
    right_to_wrong: int | None = None


@dataclass(frozen=True)
class Comparison:
    a: dict[str, Any]  # suite, model_path, suite_hash, created_at, n
    b: dict[str, Any]
    same_suite: bool
    shared: int
    only_a: int
    only_b: int
    alpha: float
    metrics: tuple[MetricChange, ...]
    tags: dict[str, tuple[MetricChange, ...]]
    fixed: tuple[str, ...]  # ids wrong in A, right in B
    broken: tuple[str, ...]  # ids right in A, wrong in B
    notes: tuple[str, ...] = field(default=())

    @property
    def improvements(self) -> list[MetricChange]:
        return [m for m in self.metrics if m.verdict == "improved"]

    @property
    def regressions(self) -> list[MetricChange]:
        return [m for m in self.metrics if m.verdict == "regressed"]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["metrics"] = [asdict(m) for m in self.metrics]
        out["tags"] = {t: [asdict(m) for m in ms] for t, ms in self.tags.items()}
        out["fixed"], out["broken"] = list(self.fixed), list(self.broken)
        out["notes"] = list(self.notes)
        return out


def compare_results(
    a: EvalResult, b: EvalResult, *, alpha: float = 0.05, seed: int = 0
) -> Comparison:
    """Paired comparison of ``b`` against ``a`` (the reference); see the module docstring."""
    if not 0 < alpha < 1:
        raise EvalError(f"alpha must be in (0, 1); got {alpha}")
    by_id = {r.id: r for r in b.records}
    pairs = [(r, by_id[r.id]) for r in a.records if r.id in by_id]
    if not pairs:
        raise EvalError(
            f"results {a.suite!r} and {b.suite!r} share no sample ids; compare two results of "
            "the same suite"
        )
    notes = []
    same = bool(a.suite_hash) and a.suite_hash == b.suite_hash
    if not same:
        notes.append(
            "suite hashes differ (data, prompt template, grader or renderer changed): "
            f"comparing the {len(pairs)} shared sample ids only"
        )
    nll = _is_nll(a) and _is_nll(b)
    tags = sorted({t for ra, rb in pairs for t in (*ra.tags, *rb.tags)})
    per_tag = {
        tag: tuple(
            _metrics(
                [(ra, rb) for ra, rb in pairs if tag in ra.tags or tag in rb.tags],
                alpha,
                seed,
                nll,
                only_headline=True,
            )
        )
        for tag in tags
    }
    return Comparison(
        a=_header(a),
        b=_header(b),
        same_suite=same,
        shared=len(pairs),
        only_a=len(a.records) - len(pairs),
        only_b=len(b.records) - len(pairs),
        alpha=alpha,
        metrics=tuple(_metrics(pairs, alpha, seed, nll)),
        tags=per_tag,
        fixed=tuple(ra.id for ra, rb in pairs if not nll and not ra.correct and rb.correct),
        broken=tuple(ra.id for ra, rb in pairs if not nll and ra.correct and not rb.correct),
        notes=tuple(notes),
    )


def _header(result: EvalResult) -> dict[str, Any]:
    return {
        "suite": result.suite,
        "model_path": result.model_path,
        "suite_hash": result.suite_hash,
        "created_at": result.created_at,
        "n": len(result.records),
    }


def _is_nll(result: EvalResult) -> bool:
    return "nll" in result.metrics and "accuracy" not in result.metrics


def _metrics(
    pairs: Pairs, alpha: float, seed: int, nll: bool, only_headline: bool = False
) -> list[MetricChange]:
    out: list[MetricChange] = []
    if nll:
        out.append(_scores("nll", pairs, alpha, seed, weight="tokens"))
        return out
    out.append(_binary("accuracy", [(ra.correct, rb.correct) for ra, rb in pairs], alpha))
    if only_headline:
        return out
    if any(r.score not in (0.0, 1.0) for pair in pairs for r in pair):
        out.append(_scores("mean_score", pairs, alpha, seed))
    for name in sorted({n for pair in pairs for r in pair for n in r.metrics}):
        # a metric some samples lack (over_refusal_rate: benign prompts only) pairs the rest
        carried = [(ra, rb) for ra, rb in pairs if name in ra.metrics and name in rb.metrics]
        if not carried:
            continue
        values = [(ra.metrics[name], rb.metrics[name]) for ra, rb in carried]
        if all(v in (0.0, 1.0) for pair in values for v in pair):
            out.append(_binary(name, [(bool(x), bool(y)) for x, y in values], alpha))
        else:
            out.append(_scores(name, carried, alpha, seed))
    return out


def _verdict(name: str, delta: float, p: float, alpha: float) -> tuple[str, bool | None]:
    direction = metric_direction(name)
    better = None if direction == 0 else direction > 0
    if abs(delta) < 1e-12:
        return "unchanged", better
    if p >= alpha or direction == 0:
        return "not significant", better
    return ("improved" if delta * direction > 0 else "regressed"), better


def _binary(name: str, outcomes: Sequence[tuple[bool, bool]], alpha: float) -> MetricChange:
    n = len(outcomes)
    up = sum(1 for x, y in outcomes if not x and y)
    down = sum(1 for x, y in outcomes if x and not y)
    a = sum(x for x, _ in outcomes) / n
    b = sum(y for _, y in outcomes) / n
    p = mcnemar_exact(up, down)
    verdict, better = _verdict(name, b - a, p, alpha)
    return MetricChange(name, a, b, b - a, n, "mcnemar_exact", p, verdict, better, up, down)


def _value(record: SampleRecord, name: str) -> float:
    return record.score if name == "mean_score" else float(record.metrics[name])


def _scores(
    name: str, pairs: Pairs, alpha: float, seed: int, weight: str | None = None
) -> MetricChange:
    weights = [float(ra.metrics.get(weight, 1.0)) if weight else 1.0 for ra, _ in pairs]
    total = sum(weights)
    a = sum(w * _value(ra, name) for w, (ra, _) in zip(weights, pairs, strict=True)) / total
    b = sum(w * _value(rb, name) for w, (_, rb) in zip(weights, pairs, strict=True)) / total
    diffs = [_value(rb, name) - _value(ra, name) for ra, rb in pairs]
    p = paired_permutation(diffs, weights, seed=seed)
    verdict, better = _verdict(name, b - a, p, alpha)
    return MetricChange(name, a, b, b - a, len(pairs), "paired_permutation", p, verdict, better)
