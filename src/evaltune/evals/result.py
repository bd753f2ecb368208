"""``EvalResult``: what one evaluation produced, as data, and its JSONL file.

One ``SampleRecord`` per item keeps everything needed to read a failure (prompt, response,
target, score, grader detail, why sampling stopped) without re-running it; the aggregate metrics
carry a Wilson confidence interval because suites are small and a bare accuracy over-claims. A
result is stamped with what produced it (model path, sampling settings, suite hash) so that any
two results can be compared sample by sample and a mismatch in setup is visible.

A grader may report per-sample metrics besides its score (``SampleRecord.metrics``, e.g. a
safety grader's ``refusal_rate`` 0/1): each becomes a suite metric, the mean over the records
that carry it, with a Wilson interval when every value is 0 or 1.

``suite_fingerprint`` hashes what a result's questions were: every example (id, messages, tags,
metadata), the prompt template, the grader with its options, and the renderer, so two results
with the same hash asked the same questions the same way and are comparable sample by sample.

File layout (``write_jsonl``): line 1 is ``{"type": "summary", **summary()}``, then one
``{"type": "sample", **record}`` line per record, in suite order. ``read_jsonl`` round-trips it
exactly. ``schema_version`` lets later readers migrate older files: version 1 files (no
per-sample metrics, no provenance) read as version 2 with those empty.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaltune.data.example import Example
from evaltune.errors import EvalError

__all__ = [
    "LOWER_IS_BETTER",
    "SCHEMA_VERSION",
    "EvalResult",
    "SampleRecord",
    "compute_suite_hash",
    "is_correct",
    "metric_direction",
    "suite_fingerprint",
    "wilson_interval",
]

SCHEMA_VERSION = 2
_READABLE_VERSIONS = (1, 2)
Z_95 = 1.959963984540054  # two-sided 95 % normal quantile

LOWER_IS_BETTER = frozenset({"nll", "perplexity", "engagement_rate", "over_refusal_rate"})
"""Metrics where a smaller value is the better model (config's ``higher_is_better`` default)."""
_NEUTRAL = frozenset({"n", "tokens", "mean_response_tokens", "truncated_fraction"})


def metric_direction(name: str) -> int:
    """+1 when a higher ``name`` is better, -1 when lower is, 0 for counts and interval bounds
    (which ``compare`` reports without calling a change good or bad)."""
    if name in _NEUTRAL or name.endswith(("_ci_low", "_ci_high", "_n")):
        return 0
    return -1 if name in LOWER_IS_BETTER else 1


def now_iso() -> str:
    """The current time as an ISO 8601 UTC string, to the second (``created_at``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def is_correct(score: float) -> bool:
    """A sample counts towards accuracy only with full credit (binary graders give 0 or 1)."""
    return score >= 1.0 - 1e-9


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; ``(0, 1)`` when ``n == 0``.

    Unlike the normal approximation it stays inside [0, 1] and is honest at 0/n and n/n.
    """
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    denom = 1 + z2 / n
    # At 0/n and n/n the bound is exactly 0 or 1; say so rather than trust rounding.
    low = 0.0 if successes == 0 else (centre - margin) / denom
    high = 1.0 if successes == n else (centre + margin) / denom
    return max(0.0, low), min(1.0, high)


def compute_suite_hash(
    suite_file: str | Path,
    grader: str,
    renderer: str,
    grader_options: Mapping[str, Any] | None = None,
) -> str:
    """sha256 over the suite file's bytes, the grader (name and options) and the renderer name:
    two results with the same hash asked the same questions and scored them the same way."""
    h = hashlib.sha256(Path(suite_file).read_bytes())
    options = json.dumps(dict(grader_options or {}), sort_keys=True, default=str)
    for part in (grader, options, renderer):
        h.update(b"\0" + part.encode())
    return h.hexdigest()


def suite_fingerprint(
    examples: Iterable[Example],
    *,
    renderer: str,
    template: str = "",
    grader: str = "",
    grader_options: Mapping[str, Any] | None = None,
) -> str:
    """sha256 over the examples actually asked (id, messages, tags, metadata; so a ``limit`` or
    an edited item changes it), the prompt template text, the grader and its options, and the
    renderer name."""
    h = hashlib.sha256()
    for ex in examples:
        item = {
            "id": ex.id,
            "messages": [[m.role, m.content] for m in ex.messages],
            "tags": list(ex.tags),
            "metadata": ex.metadata,
        }
        h.update(json.dumps(item, sort_keys=True, default=str).encode() + b"\n")
    options = json.dumps(dict(grader_options or {}), sort_keys=True, default=str)
    for part in (template, grader, options, renderer):
        h.update(b"\0" + part.encode())
    return h.hexdigest()


@dataclass(frozen=True)
class SampleRecord:
    id: str
    prompt: str  # the prompt messages as text (see evals.generation.prompt_text)
    response: str  # the parsed answer (renderer.parse_response)
    target: str  # the reference answer
    score: float  # in [0, 1]
    correct: bool  # is_correct(score) unless a grader says otherwise
    tags: tuple[str, ...] = ()
    detail: str = ""  # the grader's explanation
    stop_reason: str = ""  # "stop" | "length"
    num_tokens: int = 0  # sampled tokens, stop sequence included
    extra: dict[str, Any] = field(default_factory=dict)  # grader/extension data, JSON-able
    metrics: dict[str, float] = field(default_factory=dict)  # per-sample grader metrics

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tags": list(self.tags)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SampleRecord:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise EvalError(f"unknown sample fields {unknown}; expected some of {sorted(known)}")
        return cls(**{**data, "tags": tuple(data.get("tags", ()))})


def _tag_stats(records: Sequence[SampleRecord]) -> dict[str, dict[str, float]]:
    by_tag: dict[str, list[SampleRecord]] = {}
    for record in records:
        for tag in dict.fromkeys(record.tags):  # a tag repeated on one record counts once
            by_tag.setdefault(tag, []).append(record)
    return {
        tag: {
            "accuracy": sum(r.correct for r in rs) / len(rs),
            "n": len(rs),
            "mean_score": sum(r.score for r in rs) / len(rs),
            **{name: value for name, (value, _) in _sample_means(rs).items()},
        }
        for tag, rs in sorted(by_tag.items())
    }


def _sample_means(records: Sequence[SampleRecord]) -> dict[str, tuple[float, list[float]]]:
    """Per-sample metric name -> (mean over the records carrying it, the values)."""
    values: dict[str, list[float]] = {}
    for record in records:
        for name, value in record.metrics.items():
            values.setdefault(name, []).append(float(value))
    return {name: (sum(vs) / len(vs), vs) for name, vs in sorted(values.items())}


def _metrics(records: Sequence[SampleRecord]) -> dict[str, float]:
    n = len(records)
    correct = sum(r.correct for r in records)
    low, high = wilson_interval(correct, n)
    metrics: dict[str, float] = {
        "accuracy": correct / n,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "n": n,
        "mean_score": sum(r.score for r in records) / n,
        "truncated_fraction": sum(r.stop_reason == "length" for r in records) / n,
        "mean_response_tokens": sum(r.num_tokens for r in records) / n,
    }
    for name, (mean, values) in _sample_means(records).items():
        if name in metrics:
            raise EvalError(f"per-sample metric {name!r} clashes with a built-in metric")
        metrics[name] = mean
        if all(v in (0.0, 1.0) for v in values):
            metrics[f"{name}_ci_low"], metrics[f"{name}_ci_high"] = wilson_interval(
                int(sum(values)), len(values)
            )
        if len(values) != n:
            metrics[f"{name}_n"] = len(values)
    return metrics


@dataclass(frozen=True)
class EvalResult:
    suite: str
    records: tuple[SampleRecord, ...]
    metrics: dict[str, float]
    per_tag: dict[str, dict[str, float]]  # tag -> {"accuracy", "n", "mean_score"}
    model_path: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)  # max_tokens, temperature, seed, stop
    suite_hash: str = ""
    created_at: str = ""  # ISO 8601, UTC
    provenance: dict[str, Any] = field(default_factory=dict)  # renderer, template, grader, data

    @classmethod
    def from_records(
        cls,
        suite: str,
        records: Iterable[SampleRecord],
        *,
        model_path: str | None = None,
        sampling: Mapping[str, Any] | None = None,
        suite_hash: str = "",
        created_at: str | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> EvalResult:
        """Aggregate records into metrics and per-tag accuracy; stamps ``created_at`` now."""
        records = tuple(records)
        if not records:
            raise EvalError(f"suite {suite!r}: no records to aggregate")
        return cls(
            suite=suite,
            records=records,
            metrics=_metrics(records),
            per_tag=_tag_stats(records),
            model_path=model_path,
            sampling=dict(sampling or {}),
            suite_hash=suite_hash,
            created_at=created_at or now_iso(),
            provenance=dict(provenance or {}),
        )

    def summary(self) -> dict[str, Any]:
        """Everything but the records: what summary.json and the file header hold."""
        return {
            "schema_version": SCHEMA_VERSION,
            "suite": self.suite,
            "metrics": dict(self.metrics),
            "per_tag": {tag: dict(stats) for tag, stats in self.per_tag.items()},
            "model_path": self.model_path,
            "sampling": dict(self.sampling),
            "suite_hash": self.suite_hash,
            "created_at": self.created_at,
            "provenance": dict(self.provenance),
        }

    def to_metrics(self, prefix: str | None = None) -> dict[str, float]:
        """Flat ``stage/name`` keys for tracking under ``prefix`` (default ``eval/<suite>``):
        ``eval/demo/accuracy``, ..., ``eval/demo/tag/<tag>/accuracy`` and ``.../n``."""
        base = prefix if prefix is not None else f"eval/{self.suite}"
        out = {f"{base}/{name}": float(value) for name, value in self.metrics.items()}
        for tag, stats in self.per_tag.items():
            out[f"{base}/tag/{tag}/accuracy"] = float(stats["accuracy"])
            out[f"{base}/tag/{tag}/n"] = float(stats["n"])
        return out

    def write_jsonl(self, path: str | Path) -> None:
        """Summary header, then one line per sample; written to a temp file and renamed so a
        reader never sees half a result."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"type": "summary", **self.summary()}, ensure_ascii=False)]
        lines += [
            json.dumps({"type": "sample", **r.to_dict()}, ensure_ascii=False) for r in self.records
        ]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def read_jsonl(cls, path: str | Path) -> EvalResult:
        path = Path(path)
        header: dict[str, Any] | None = None
        records: list[SampleRecord] = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                data = json.loads(line)
                kind = data.pop("type", None)
                if kind == "summary" and header is None and not records:
                    header = data
                elif kind == "sample" and header is not None:
                    records.append(SampleRecord.from_dict(data))
                else:
                    raise EvalError(f"unexpected record type {kind!r}")
            except (json.JSONDecodeError, TypeError, EvalError) as exc:
                raise EvalError(
                    f"{where}: not an evaltune result line ({exc}); expected a summary line "
                    "then sample lines, as EvalResult.write_jsonl writes"
                ) from None
        if header is None:
            raise EvalError(f"{path}: empty file; expected an EvalResult JSONL")
        version = header.pop("schema_version", None)
        if version not in _READABLE_VERSIONS:
            raise EvalError(
                f"{path}: schema_version {version!r}; this reader knows "
                + ", ".join(map(str, _READABLE_VERSIONS))
            )
        try:
            return cls(records=tuple(records), **header)
        except TypeError as exc:
            raise EvalError(f"{path}:1: malformed summary line ({exc})") from None
