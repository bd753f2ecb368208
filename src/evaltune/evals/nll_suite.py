"""An NLL suite (layer 1): negative log-likelihood of reference completions, as an ``EvalResult``.

Each example is rendered with its completion (weights 1 on the completion tokens, as for
training) and scored through ``SamplingClient.compute_logprobs``, or, given a TrainingClient,
through ``forward(..., "cross_entropy")`` and its per-datum ``logprobs``; every request is
submitted before any is awaited. A record per example holds its mean NLL per completion token
(``metrics["nll"]``), its token count (``metrics["tokens"]``) and ``score = exp(-nll)`` (the
geometric-mean token probability, in [0, 1]). NLL has no right answer, so records are marked
correct (never counted as failures by the loop's failure analysis) and there is no accuracy.

Suite metrics: ``nll`` (token-weighted: total NLL / total tokens, the number ``validation_nll``
gives), ``nll_ci_low`` / ``nll_ci_high`` (a 95 % normal interval from the ratio estimator's
linearised variance, ``Σ t_i² (x_i − nll)² / (Σ t_i)²`` with ``x_i`` and ``t_i`` each example's
mean NLL and tokens), ``perplexity`` (``exp(nll)``), ``n``, ``tokens`` and ``mean_score``.
Lower ``nll`` is better.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tinker import types

from evaltune.backends.contract import SamplingClient, TrainingClient
from evaltune.data.example import Example
from evaltune.data.renderers import RenderedExample, Renderer, to_datum
from evaltune.errors import EvalError
from evaltune.evals.generation import prompt_text
from evaltune.evals.result import Z_95, EvalResult, SampleRecord, now_iso

__all__ = ["evaluate_nll", "nll_metrics"]


def nll_metrics(records: Sequence[SampleRecord]) -> dict[str, float]:
    tokens = [r.metrics["tokens"] for r in records]
    nlls = [r.metrics["nll"] for r in records]
    total = sum(tokens)
    mean = sum(t * x for t, x in zip(tokens, nlls, strict=True)) / total
    var = sum(t * t * (x - mean) ** 2 for t, x in zip(tokens, nlls, strict=True)) / total**2
    half = Z_95 * math.sqrt(var)
    return {
        "nll": mean,
        "nll_ci_low": max(0.0, mean - half),
        "nll_ci_high": mean + half,
        "perplexity": math.exp(mean),
        "n": len(records),
        "tokens": total,
        "mean_score": sum(r.score for r in records) / len(records),
    }


def _per_token(logprobs: Sequence[float | None], weights: Sequence[float]) -> tuple[float, float]:
    """(total NLL, total weight) over positions 1.. (token 0 has no logprob)."""
    nll = weight = 0.0
    for lp, w in zip(logprobs[1:], weights[1:], strict=True):
        if w:
            assert lp is not None, "compute_logprobs returned None past position 0"
            nll -= w * lp
            weight += w
    return nll, weight


def _score(
    client: SamplingClient | TrainingClient, rendered: Sequence[RenderedExample]
) -> list[tuple[float, float]]:
    if hasattr(client, "compute_logprobs"):  # a SamplingClient; else a TrainingClient
        futures = [
            client.compute_logprobs(types.ModelInput.from_ints(list(r.tokens))) for r in rendered
        ]
        return [_per_token(f.result(), r.weights) for f, r in zip(futures, rendered, strict=True)]
    futures = [client.forward([to_datum(r)], "cross_entropy") for r in rendered]
    out = []
    for future, r in zip(futures, rendered, strict=True):
        logprobs = future.result().loss_fn_outputs[0]["logprobs"].tolist()
        out.append(_per_token([None, *logprobs], r.weights))
    return out


def evaluate_nll(
    client: SamplingClient | TrainingClient,
    examples: Sequence[Example],
    renderer: Renderer,
    *,
    suite: str,
    max_seq_len: int | None = None,
    model_path: str | None = None,
    suite_hash: str = "",
    progress: Callable[[int, int], None] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> EvalResult:
    """NLL of every example's completion under ``client`` (a SamplingClient or TrainingClient)."""
    if not examples:
        raise EvalError(f"suite {suite!r} has no examples to evaluate")
    rendered = [renderer.render_example(e, max_seq_len) for e in examples]
    keep = [i for i, r in enumerate(rendered) if len(r.tokens) >= 2 and any(r.weights[1:])]
    if not keep:
        raise EvalError(
            f"suite {suite!r}: no example has completion tokens to score; an NLL suite needs "
            "examples with a completion"
        )
    scored = _score(client, [rendered[i] for i in keep])
    records = []
    for done, (i, (nll, weight)) in enumerate(zip(keep, scored, strict=True), 1):
        ex = examples[i]
        mean = nll / weight
        records.append(
            SampleRecord(
                id=ex.id,
                prompt=prompt_text(ex.prompt_messages),
                response="",
                target=ex.completion,
                score=math.exp(-mean),
                correct=True,
                tags=tuple(ex.tags),
                detail=f"NLL {mean:.4f} per token over {weight:g} tokens",
                metrics={"nll": mean, "tokens": weight},
            )
        )
        if progress is not None:
            progress(done, len(keep))
    return EvalResult(
        suite=suite,
        records=tuple(records),
        metrics=nll_metrics(records),
        per_tag={},
        model_path=model_path,
        sampling={"max_seq_len": max_seq_len},
        suite_hash=suite_hash,
        created_at=now_iso(),
        provenance=dict(provenance or {}),
    )
