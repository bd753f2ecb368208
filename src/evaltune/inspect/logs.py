"""An Inspect eval log read back as an ``EvalResult``: one record per sample, with its scores.

Score values become numbers the way Inspect's own metrics read them (``value_to_float``):
``C`` 1, ``I`` 0, ``P`` 0.5, ``N`` 0, booleans, numbers (clamped to [0, 1]), ``yes``/``no``; a
dict value (several numbers from one scorer) is their mean. The first scorer (or the one named
``scorer``) gives each record's ``score`` and so the suite's ``accuracy`` (full credit counts);
every scorer's value is also kept as a per-sample metric under its name. A sample that raised
scores 0, with the error as its detail. With several epochs a sample's id is ``<id>#<epoch>``,
so ids stay unique for ``evaltune compare``.

``suite_hash`` covers the task (name, file, arguments), every sample's id, input, target and
metadata, the scorers and the renderer, so two logs of the same task asked the same questions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from evaltune.errors import EvalError
from evaltune.evals import EvalResult, SampleRecord, is_correct
from evaltune.evals.result import metric_direction

__all__ = ["result_from_log", "score_value"]

_BUILTIN = ("accuracy", "n", "mean_score", "truncated_fraction", "mean_response_tokens")


def score_value(value: Any) -> float:
    """An Inspect score ``Value`` as a number in [0, 1]."""
    from inspect_ai.scorer import value_to_float

    if isinstance(value, Mapping):
        values = [score_value(v) for v in value.values()]
        return sum(values) / len(values) if values else 0.0
    if isinstance(value, list):
        values = [score_value(v) for v in value]
        return sum(values) / len(values) if values else 0.0
    return min(1.0, max(0.0, float(value_to_float()(value))))


def _text(content: Any) -> str:
    """A sample input (a string or chat messages) as a person reads it."""
    if isinstance(content, str):
        return content
    turns = [(m.role, m.text) for m in content]
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    return "\n\n".join(f"{role}: {text}" for role, text in turns)


def _target(target: Any) -> str:
    return " | ".join(target) if isinstance(target, list) else str(target)


def _tags(metadata: Mapping[str, Any] | None) -> tuple[str, ...]:
    tags = (metadata or {}).get("tags", ())
    if isinstance(tags, str):
        return (tags,)
    return tuple(str(t) for t in tags) if isinstance(tags, list | tuple) else ()


def _stop_reason(output: Any) -> str:
    reason = str(getattr(output, "stop_reason", "") or "")
    return "length" if reason in ("max_tokens", "model_length") else reason


def _record(sample: Any, scorer: str | None, epochs: int) -> SampleRecord:
    sid = str(sample.id) if epochs <= 1 else f"{sample.id}#{sample.epoch}"
    scores = dict(sample.scores or {})
    metrics = {
        name: score_value(s.value)
        for name, s in scores.items()
        if name not in _BUILTIN and metric_direction(name) != 0
    }
    output = sample.output
    usage = getattr(output, "usage", None)
    base = {
        "id": sid,
        "prompt": _text(sample.input),
        "response": output.completion if output is not None else "",
        "target": _target(sample.target),
        "tags": _tags(sample.metadata),
        "stop_reason": _stop_reason(output),
        "num_tokens": int(usage.output_tokens) if usage is not None else 0,
        "metrics": metrics,
    }
    if sample.error is not None:
        return SampleRecord(
            score=0.0, correct=False, detail=f"error: {sample.error.message}", **base
        )
    name = scorer or next(iter(scores), None)
    if name is None or name not in scores:
        choices = ", ".join(scores) or "none"
        raise EvalError(f"sample {sid}: no score from scorer {name!r} (scores: {choices})")
    score = scores[name]
    value = score_value(score.value)
    detail = " · ".join(
        part
        for part in (
            f"{name}: {score.value!r}",
            f"answer: {score.answer!r}" if score.answer is not None else "",
            score.explanation or "",
        )
        if part
    )
    return SampleRecord(
        score=value,
        correct=is_correct(value),
        detail=detail,
        extra={"inspect_scores": {k: s.value for k, s in scores.items()}},
        **base,
    )


def _suite_hash(log: Any, renderer: str) -> str:
    spec = log.eval
    h = hashlib.sha256()
    head = {
        "task": spec.task,
        "task_file": spec.task_file,
        "task_args": spec.task_args,
        "scorers": [s.name for s in (spec.scorers or [])],
        "renderer": renderer,
    }
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for s in log.samples or []:
        item = {
            "id": s.id,
            "epoch": s.epoch,
            "input": _text(s.input),
            "target": _target(s.target),
            "metadata": s.metadata,
        }
        h.update(b"\n" + json.dumps(item, sort_keys=True, default=str).encode())
    return h.hexdigest()


def result_from_log(
    log: Any,
    *,
    suite: str | None = None,
    scorer: str | None = None,
    model_path: str | None = None,
    renderer: str = "",
) -> EvalResult:
    """``log`` (an Inspect ``EvalLog`` with its samples) as an ``EvalResult`` named ``suite``
    (default: the task's name)."""
    spec = log.eval
    if log.status != "success":
        reason = log.error.message if log.error is not None else log.status
        raise EvalError(f"Inspect task {spec.task!r} did not finish ({log.status}): {reason}")
    if not log.samples:
        raise EvalError(
            f"Inspect task {spec.task!r}: the log {log.location or ''} holds no samples; "
            "read it with read_eval_log(..., header_only=False)"
        )
    epochs = max((s.epoch for s in log.samples), default=1)
    records = [_record(s, scorer, epochs) for s in log.samples]
    config = spec.model_generate_config  # the model's own, then the eval's (-- options)
    if log.plan is not None:
        config = config.merge(log.plan.config)
    sampling = {
        "max_tokens": config.max_tokens,
        "temperature": config.temperature,
        "seed": config.seed,
        "num_samples": 1,
        "stop": list(config.stop_seqs or []),
    }
    provenance = {
        "kind": "inspect",
        "task": spec.task,
        "task_file": spec.task_file,
        "task_args": dict(spec.task_args or {}),
        "scorers": [s.name for s in (spec.scorers or [])],
        "scorer": scorer or next(iter(log.samples[0].scores or {}), None),
        "model": spec.model,
        "log": log.location,
        "inspect_ai": (spec.packages or {}).get("inspect_ai"),
        "renderer": renderer,
    }
    return EvalResult.from_records(
        suite or spec.task,
        records,
        model_path=model_path,
        sampling=sampling,
        suite_hash=_suite_hash(log, renderer),
        provenance=provenance,
    )
