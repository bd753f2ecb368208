"""Tinker's built-in losses, on per-token target log-probabilities.

Every loss is a *sum* over tokens (``metrics["loss:sum"]``), as on Tinker; a caller that wants a
mean divides by its own token count. Each function maps target log-probabilities and the
matching ``loss_fn_inputs`` slices to per-token losses; ``compute_loss`` sums them.

- ``cross_entropy``: ``-(weights * logprobs).sum()``
- ``importance_sampling``: ``-(exp(logprobs - sampling_logprobs) * advantages).sum()``
- ``ppo``: ``-min(ratio * A, clamp(ratio, low, high) * A).sum()``, with ``clip_low_threshold``
  and ``clip_high_threshold`` from ``loss_fn_config`` (defaults 0.8 and 1.2, Tinker's ε = 0.2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from evaltune.errors import EngineError

__all__ = ["LOSSES", "REQUIRED_INPUTS", "check_loss_fn", "compute_loss", "grad_mask"]

PPO_CLIP_LOW = 0.8
PPO_CLIP_HIGH = 1.2

Inputs = Mapping[str, torch.Tensor]


def cross_entropy(lp: torch.Tensor, inputs: Inputs, config: Mapping[str, float]) -> torch.Tensor:
    return -(inputs["weights"] * lp)


def importance_sampling(
    lp: torch.Tensor, inputs: Inputs, config: Mapping[str, float]
) -> torch.Tensor:
    ratio = torch.exp(lp - inputs["logprobs"])
    return -(ratio * inputs["advantages"])


def ppo(lp: torch.Tensor, inputs: Inputs, config: Mapping[str, float]) -> torch.Tensor:
    low = float(config.get("clip_low_threshold", PPO_CLIP_LOW))
    high = float(config.get("clip_high_threshold", PPO_CLIP_HIGH))
    if not low <= high:
        raise EngineError(
            f"ppo needs clip_low_threshold <= clip_high_threshold; got {low} > {high}"
        )
    advantages = inputs["advantages"]
    ratio = torch.exp(lp - inputs["logprobs"])
    clipped = torch.clamp(ratio, low, high)
    return -torch.minimum(ratio * advantages, clipped * advantages)


LossFn = Callable[[torch.Tensor, Inputs, Mapping[str, float]], torch.Tensor]

LOSSES: dict[str, LossFn] = {
    "cross_entropy": cross_entropy,
    "importance_sampling": importance_sampling,
    "ppo": ppo,
}

REQUIRED_INPUTS: dict[str, tuple[str, ...]] = {
    "cross_entropy": ("target_tokens",),
    "importance_sampling": ("target_tokens", "logprobs", "advantages"),
    "ppo": ("target_tokens", "logprobs", "advantages"),
}


def check_loss_fn(loss_fn: str) -> LossFn:
    try:
        return LOSSES[loss_fn]
    except KeyError:
        raise EngineError(
            f"loss_fn {loss_fn!r} is not supported by the local engine; "
            f"choose one of: {', '.join(LOSSES)}"
        ) from None


def grad_mask(loss_fn: str, inputs: Inputs) -> torch.Tensor:
    """Positions whose log-probability reaches the loss: only those need logits with grad."""
    if loss_fn == "cross_entropy":
        return inputs["weights"] != 0
    return inputs["advantages"] != 0


def compute_loss(
    loss_fn: str, lp: torch.Tensor, inputs: Inputs, config: Mapping[str, float] | None
) -> torch.Tensor:
    """Per-token losses (shape of ``lp``); their sum is the loss."""
    return check_loss_fn(loss_fn)(lp, inputs, config or {})
