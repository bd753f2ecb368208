"""Validation NLL: mean negative log-likelihood per weighted token of held-out data.

Two paths to the same number, for the two clients a caller may hold:

- ``validation_nll`` through a TrainingClient's ``forward(..., "cross_entropy")``, whose
  ``metrics["loss:sum"]`` is the weighted *sum* of token NLL (Tinker's semantics), divided here
  by the summed weights, so results do not depend on how data was split into calls;
- ``sampler_nll`` through a SamplingClient's ``compute_logprobs``, for a saved checkpoint with
  no training client (a sampler snapshot, the base model), masked with the same weights.

Both submit every request before waiting on any, so the backend can overlap them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tinker import types

from evaltune.backends.contract import SamplingClient, TrainingClient
from evaltune.data.renderers import RenderedExample
from evaltune.errors import EvalError

__all__ = ["NLLResult", "sampler_nll", "validation_nll"]

DEFAULT_CHUNK = 16


@dataclass(frozen=True)
class NLLResult:
    mean_nll: float  # nats per unit of weight (per completion token with 0/1 weights)
    total_weight: float
    n: int  # sequences scored

    def to_metrics(self, prefix: str = "eval/val") -> dict[str, float]:
        return {f"{prefix}/nll": self.mean_nll, f"{prefix}/weight": self.total_weight}


def _datum_weight(datum: types.Datum, index: int) -> float:
    weights: Any = datum.loss_fn_inputs.get("weights")
    if weights is None:  # cross_entropy weighs every target token 1 when weights are absent
        targets: Any = datum.loss_fn_inputs.get("target_tokens")
        if targets is None:
            raise EvalError(f"datum {index} has no loss_fn_inputs['target_tokens']")
        return float(len(targets.tolist()))
    return float(sum(weights.tolist()))


def _finish(total_nll: float, total_weight: float, n: int, what: str) -> NLLResult:
    if total_weight <= 0:
        raise EvalError(
            f"{what}: the {n} sequences carry no loss weight, so there is nothing to score; "
            "render them with a completion (weights 1.0 on the answer tokens)"
        )
    return NLLResult(total_nll / total_weight, total_weight, n)


def validation_nll(
    training_client: TrainingClient,
    datums: Sequence[types.Datum],
    *,
    chunk_size: int = DEFAULT_CHUNK,
) -> NLLResult:
    """Weighted mean NLL of ``datums`` under the training client's current weights (no
    gradients); ``chunk_size`` datums per ``forward`` call, all calls submitted first."""
    if not datums:
        raise EvalError("validation_nll needs at least one datum; got none")
    if chunk_size < 1:
        raise EvalError(f"validation_nll: chunk_size must be at least 1; got {chunk_size}")
    futures = [
        training_client.forward(list(datums[i : i + chunk_size]), "cross_entropy")
        for i in range(0, len(datums), chunk_size)
    ]
    total_nll = sum(float(f.result().metrics["loss:sum"]) for f in futures)
    total_weight = sum(_datum_weight(d, i) for i, d in enumerate(datums))
    return _finish(total_nll, total_weight, len(datums), "validation_nll")


def sampler_nll(sampling_client: SamplingClient, rendered: Sequence[RenderedExample]) -> NLLResult:
    """Weighted mean NLL from ``compute_logprobs`` over each full sequence.

    Token 0 has no logprob (nothing precedes it) and is skipped, as ``to_datum`` drops its
    weight too; so for the same weights this equals ``validation_nll`` on ``to_datum`` of them.
    """
    if not rendered:
        raise EvalError("sampler_nll needs at least one rendered example; got none")
    for i, r in enumerate(rendered):
        if len(r.tokens) != len(r.weights) or len(r.tokens) < 2:
            raise EvalError(
                f"sampler_nll: rendered example {i} has {len(r.tokens)} tokens and "
                f"{len(r.weights)} weights; need equal lengths of at least 2"
            )
    futures = [
        sampling_client.compute_logprobs(types.ModelInput.from_ints(list(r.tokens)))
        for r in rendered
    ]
    total_nll = total_weight = 0.0
    for r, future in zip(rendered, futures, strict=True):
        logprobs = future.result()
        for lp, w in zip(logprobs[1:], r.weights[1:], strict=True):
            if w:
                assert lp is not None, "compute_logprobs returned None past position 0"
                total_nll -= w * lp
                total_weight += w
    return _finish(total_nll, total_weight, len(rendered), "sampler_nll")
