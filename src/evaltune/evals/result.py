"""``EvalResult``: what one evaluation produced, as data, and its JSONL file.

One ``SampleRecord`` per item keeps everything needed to read a failure (prompt, response,
target, score, grader detail, why sampling stopped) without re-running it; the aggregate metrics
carry a Wilson confidence interval because suites are small and a bare accuracy over-claims. A
result is stamped with what produced it (model path, sampling settings, suite hash) so that any
two results can be compared sample by sample and a mismatch in setup is visible.

File layout (``write_jsonl``): line 1 is ``{"type": "summary", **summary()}``, then one
``{"type": "sample", **record}`` line per record, in suite order. ``read_jsonl`` round-trips it
exactly. ``schema_version`` lets later readers migrate older files.
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

from evaltune.errors import EvalError

__all__ = [
    "SCHEMA_VERSION",
    "EvalResult",
    "SampleRecord",
    "compute_suite_hash",
    "is_correct",
    "wilson_interval",
]

SCHEMA_VERSION = 1
Z_95 = 1.959963984540054  # two-sided 95 % normal quantile


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


@dataclass(frozen=True)
class SampleRecord:
    id: str
    prompt: str  # the prompt messages as text (see evals.app.prompt_text)
    response: str  # the parsed answer (renderer.parse_response)
    target: str  # the reference answer
    score: float  # in [0, 1]
    correct: bool  # is_correct(score) unless a grader says otherwise
    tags: tuple[str, ...] = ()
    detail: str = ""  # the grader's explanation
    stop_reason: str = ""  # "stop" | "length"
    num_tokens: int = 0  # sampled tokens, stop sequence included
    extra: dict[str, Any] = field(default_factory=dict)  # grader/extension data, JSON-able

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
        }
        for tag, rs in sorted(by_tag.items())
    }


def _metrics(records: Sequence[SampleRecord]) -> dict[str, float]:
    n = len(records)
    correct = sum(r.correct for r in records)
    low, high = wilson_interval(correct, n)
    return {
        "accuracy": correct / n,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "n": n,
        "mean_score": sum(r.score for r in records) / n,
        "truncated_fraction": sum(r.stop_reason == "length" for r in records) / n,
        "mean_response_tokens": sum(r.num_tokens for r in records) / n,
    }


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
            created_at=created_at or datetime.now(UTC).isoformat(timespec="seconds"),
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
        if version != SCHEMA_VERSION:
            raise EvalError(f"{path}: schema_version {version!r}; this reader knows 1")
        try:
            return cls(records=tuple(records), **header)
        except TypeError as exc:
            raise EvalError(f"{path}:1: malformed summary line ({exc})") from None
