"""Forward (and backward) passes for training clients: packed, with logits only where needed.

Two choices make the local engine fast without changing any number it returns:

- **Padding-free batches.** All datums of a request are concatenated into one row with
  ``position_ids`` restarting at 0 for each sequence; transformers turns that into a
  block-diagonal causal mask, so no compute is spent on padding and sequences never see each
  other.
- **Logits only where they matter.** The decoder runs once over every token, but the vocabulary
  projection (262k columns for Gemma 3, the largest matmul in a small model) runs with gradient
  only at positions that reach the loss (non-zero ``weights`` or ``advantages``). The remaining
  positions still get their target log-probabilities (Tinker returns them for every token), but
  without autograd, in chunks. Long sequences checkpoint the projection chunk by chunk, so the
  full ``tokens × vocab`` logits tensor never exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.checkpoint import checkpoint

from evaltune.engine.losses import REQUIRED_INPUTS, check_loss_fn, compute_loss, grad_mask
from evaltune.errors import EngineError

__all__ = [
    "ForwardItem",
    "ForwardResult",
    "TopLogprobs",
    "run_forward",
    "sequence_logprobs",
    "sequence_top_logprobs",
]

# Logits elements per projection chunk (fp32): 2**27 × 4 B = 512 MiB at most.
LOGITS_BUDGET = 2**27


@dataclass
class ForwardItem:
    """One datum in plain data: input tokens and its ``loss_fn_inputs`` as 1-D tensors."""

    tokens: list[int]
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class ForwardResult:
    loss: float
    logprobs: list[torch.Tensor]  # per item, float32, one per input token
    elementwise_loss: list[torch.Tensor]
    num_tokens: int
    num_loss_tokens: int


def model_parts(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module, float | None]:
    """The decoder stack, the (possibly LoRA-wrapped) output head and the logit softcap."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = base.get_decoder()
    head = base.get_output_embeddings()
    softcap = getattr(base.config, "final_logit_softcapping", None)
    return decoder, head, softcap


def _target_logprobs_chunk(
    head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, softcap: float | None
) -> torch.Tensor:
    logits = head(hidden).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def target_logprobs(
    head: torch.nn.Module,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    softcap: float | None,
    vocab_size: int,
) -> torch.Tensor:
    chunk = max(16, LOGITS_BUDGET // max(vocab_size, 1))
    n = hidden.shape[0]
    if n <= chunk:
        return _target_logprobs_chunk(head, hidden, targets, softcap)
    parts = []
    for start in range(0, n, chunk):
        h, t = hidden[start : start + chunk], targets[start : start + chunk]
        if torch.is_grad_enabled():
            parts.append(
                checkpoint(_target_logprobs_chunk, head, h, t, softcap, use_reentrant=False)
            )
        else:
            parts.append(_target_logprobs_chunk(head, h, t, softcap))
    return torch.cat(parts)


def _pack(
    items: Sequence[ForwardItem], keys: Sequence[str], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    ids = torch.tensor([t for item in items for t in item.tokens], dtype=torch.long)
    pos = torch.cat([torch.arange(len(item.tokens)) for item in items])
    inputs = {k: torch.cat([item.inputs[k] for item in items]) for k in keys}
    return ids.to(device), pos.to(device), {k: v.to(device) for k, v in inputs.items()}


def _check_items(items: Sequence[ForwardItem], loss_fn: str, vocab_size: int) -> list[str]:
    if not items:
        raise EngineError("forward needs at least one datum; got an empty list")
    required = REQUIRED_INPUTS[loss_fn]
    for i, item in enumerate(items):
        n = len(item.tokens)
        if n == 0:
            raise EngineError(f"datum {i}: model_input is empty")
        if "weights" not in item.inputs and loss_fn == "cross_entropy":
            item.inputs = {**item.inputs, "weights": torch.ones(n)}  # the caller's dict stays as is
        for key in required:
            if key not in item.inputs:
                raise EngineError(
                    f"datum {i}: loss_fn {loss_fn!r} needs loss_fn_inputs[{key!r}]; "
                    f"got keys {sorted(item.inputs)}"
                )
        for key, value in item.inputs.items():
            if value.shape != (n,):
                raise EngineError(
                    f"datum {i}: loss_fn_inputs[{key!r}] has shape {tuple(value.shape)}; "
                    f"expected ({n},), one value per model_input token"
                )
        bad = [t for t in item.tokens if not 0 <= t < vocab_size]
        bad += [int(t) for t in item.inputs["target_tokens"] if not 0 <= t < vocab_size]
        if bad:
            raise EngineError(
                f"datum {i}: token id {bad[0]} is outside the vocabulary (size {vocab_size})"
            )
    keys = set(items[0].inputs)
    for item in items[1:]:
        keys &= set(item.inputs)
    return sorted(keys)


def run_forward(
    model: torch.nn.Module,
    items: Sequence[ForwardItem],
    loss_fn: str,
    loss_fn_config: Mapping[str, float] | None,
    backward: bool,
) -> ForwardResult:
    """Loss, per-token logprobs and (if ``backward``) accumulated gradients for ``items``."""
    check_loss_fn(loss_fn)
    decoder, head, softcap = model_parts(model)
    vocab = head.weight.shape[0] if hasattr(head, "weight") else model.config.vocab_size
    keys = _check_items(items, loss_fn, vocab)
    device = head.weight.device
    ids, pos, inputs = _pack(items, keys, device)
    for key in ("weights", "advantages", "logprobs"):
        if key in inputs:
            inputs[key] = inputs[key].float()
    targets = inputs["target_tokens"].long()
    want_grad = grad_mask(loss_fn, inputs) if backward else torch.zeros_like(targets, dtype=bool)

    with torch.set_grad_enabled(backward):
        hidden = decoder(input_ids=ids[None], position_ids=pos[None], use_cache=False)
        hidden = hidden.last_hidden_state[0]

    lp = torch.zeros(len(ids), dtype=torch.float32, device=device)
    rest = (~want_grad).nonzero().squeeze(-1)
    with torch.no_grad():
        lp[rest] = target_logprobs(head, hidden[rest].detach(), targets[rest], softcap, vocab)
    if want_grad.any():
        idx = want_grad.nonzero().squeeze(-1)
        lp_grad = target_logprobs(head, hidden[idx], targets[idx], softcap, vocab)
        sub = {k: v[idx] for k, v in inputs.items()}
        compute_loss(loss_fn, lp_grad, sub, loss_fn_config).sum().backward()
        lp[idx] = lp_grad.detach()
    with torch.no_grad():
        elementwise = compute_loss(loss_fn, lp, inputs, loss_fn_config)

    sizes = [len(item.tokens) for item in items]
    return ForwardResult(
        loss=float(elementwise.sum()),
        logprobs=[t.cpu() for t in lp.split(sizes)],
        elementwise_loss=[t.cpu() for t in elementwise.split(sizes)],
        num_tokens=len(ids),
        num_loss_tokens=int(grad_mask(loss_fn, inputs).sum()),
    )


def _predicting(
    model: torch.nn.Module, seqs: Sequence[list[int]]
) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Module, float | None, int]:
    """One packed decoder pass over ``seqs`` (each of two tokens or more): the hidden state of
    every position that predicts a next token of its own sequence, those targets, and the head."""
    decoder, head, softcap = model_parts(model)
    vocab = head.weight.shape[0]
    device = head.weight.device
    ids = torch.tensor([t for s in seqs for t in s], dtype=torch.long, device=device)
    pos = torch.cat([torch.arange(len(s)) for s in seqs]).to(device)
    hidden = decoder(input_ids=ids[None], position_ids=pos[None], use_cache=False)
    hidden = hidden.last_hidden_state[0]
    # Position j predicts token j + 1 of the same sequence; drop each sequence's last position.
    keep, targets, start = [], [], 0
    for s in seqs:
        keep.extend(range(start, start + len(s) - 1))
        targets.extend(s[1:])
        start += len(s)
    keep_t = torch.tensor(keep, device=device)
    return hidden[keep_t], torch.tensor(targets, device=device), head, softcap, vocab


@torch.no_grad()
def sequence_logprobs(model: torch.nn.Module, sequences: Sequence[list[int]]) -> list[list[float]]:
    """Log-probability of each token given its prefix, per sequence (first token excluded)."""
    seqs = [s for s in sequences if len(s) > 1]
    if not seqs:
        return [[] for _ in sequences]
    hidden, targets, head, softcap, vocab = _predicting(model, seqs)
    lp = target_logprobs(head, hidden, targets, softcap, vocab)
    out = iter(lp.cpu().split([len(s) - 1 for s in seqs]))
    return [next(out).tolist() if len(s) > 1 else [] for s in sequences]


TopLogprobs = list[tuple[float, list[tuple[int, float]]]]


def _check_scored(model: torch.nn.Module, sequences: Sequence[list[int]]) -> None:
    """Token ids inside the vocabulary, sequences within the context: an ``EngineError`` (a
    400 on the wire) rather than an index error on the worker."""
    vocab = model.get_output_embeddings().weight.shape[0]
    max_len = getattr(model.config, "max_position_embeddings", None)
    for seq in sequences:
        bad = [t for t in seq if not 0 <= t < vocab]
        if bad:
            raise EngineError(f"token id {bad[0]} is outside the vocabulary (size {vocab})")
        if max_len and len(seq) > max_len:
            raise EngineError(
                f"{len(seq)} tokens to score exceed the model's context of {max_len} tokens"
            )


@torch.no_grad()
def sequence_top_logprobs(
    model: torch.nn.Module, sequences: Sequence[list[int]], k: int
) -> list[TopLogprobs]:
    """Per sequence, for each token after the first: its log-probability given its prefix and
    the ``k`` most likely tokens at that position with theirs, most likely first (what an
    OpenAI ``logprobs``/``echo`` request reports). The projection runs in chunks, so the
    ``tokens × vocab`` logits never exist at once."""
    _check_scored(model, sequences)
    seqs = [s for s in sequences if len(s) > 1]
    if not seqs:
        return [[] for _ in sequences]
    hidden, targets, head, softcap, vocab = _predicting(model, seqs)
    chunk = max(16, LOGITS_BUDGET // max(vocab, 1))
    rows: TopLogprobs = []
    for start in range(0, hidden.shape[0], chunk):
        logits = head(hidden[start : start + chunk]).float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        logz = torch.logsumexp(logits, dim=-1, keepdim=True)
        picked = logits.gather(-1, targets[start : start + chunk, None]) - logz
        values, indices = torch.topk(logits, min(k, vocab), dim=-1)
        values = (values - logz).cpu().tolist()
        for lp, ids, vals in zip(picked[:, 0].cpu().tolist(), indices.cpu().tolist(), values,
                                 strict=True):  # fmt: skip
            rows.append((lp, list(zip(ids, vals, strict=True))))
    out = iter(rows)
    return [[next(out) for _ in range(len(s) - 1)] if len(s) > 1 else [] for s in sequences]
