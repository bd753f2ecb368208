"""Batched sampling with a KV cache: many prompts × many samples in one decode loop.

Every row (one sample of one prompt) carries its own temperature, top-k, top-p, token budget,
stop tokens, stop strings and random generator, so requests with different settings share one
batch. Prompts are left-padded and prefilled together; each decode step then runs the model on
one new token per live row. Rows that finish are dropped from the batch and from the cache, so
a long straggler does not keep paying for finished rows.

Log-probabilities are those of the distribution the token was drawn from before top-k/top-p
truncation: ``log_softmax(logits / temperature)``, or of the raw logits when greedy
(``temperature == 0``). A seeded request draws from its own ``torch.Generator``, so the same seed
gives the same samples whatever else is in the batch. A request whose ``cancel`` event is set
(its client went away) stops at the next decode step, so an abandoned long generation does not
hold the batch, and the engine's worker, until its budget is spent. A request with an
``on_token`` callback hears of each token as it is drawn (the server streams them).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from transformers import DynamicCache

from evaltune.errors import EngineError

__all__ = ["SEED_MAX", "SEED_MIN", "SampleSpec", "Sampled", "sample_batch"]

# What torch.Generator.manual_seed accepts: a signed or an unsigned 64-bit integer.
SEED_MIN = -(2**63)
SEED_MAX = 2**64 - 1


@dataclass
class SampleSpec:
    prompt: list[int]
    num_samples: int = 1
    max_tokens: int | None = 64  # None: up to DEFAULT_MAX_TOKENS, within the model's context
    temperature: float = 1.0
    top_k: int = -1
    top_p: float = 1.0
    stop_tokens: list[int] = field(default_factory=list)
    stop_strings: list[str] = field(default_factory=list)
    seed: int | None = None
    ignore_eos: bool = False  # run past the model's end-of-sequence tokens
    cancel: threading.Event | None = None  # set: stop at the next step (ends as "length")
    # Called on the engine's worker with (sample index, token id) as each token is drawn, for
    # streaming; it must return at once (hand the token to another thread) and never raise.
    on_token: Callable[[int, int], None] | None = None


@dataclass
class Sampled:
    tokens: list[int]
    logprobs: list[float]
    stop_reason: str  # "stop" | "length"


@dataclass
class _Row:
    spec: SampleSpec
    generator: torch.Generator
    index: int = 0  # which of its spec's samples
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    stop_reason: str | None = None


DEFAULT_MAX_TOKENS = 256


def _with_budget(spec: SampleSpec, max_len: int | None) -> SampleSpec:
    """Fill in an unset ``max_tokens``: the default, cut to what the context has room for."""
    if spec.max_tokens is not None:
        return spec
    room = (max_len - len(spec.prompt)) if max_len else DEFAULT_MAX_TOKENS
    return replace(spec, max_tokens=max(1, min(DEFAULT_MAX_TOKENS, room)))


def _check(spec: SampleSpec, vocab: int, max_len: int | None) -> None:
    assert spec.max_tokens is not None
    if not spec.prompt:
        raise EngineError("sample needs a non-empty prompt")
    if spec.num_samples < 1:
        raise EngineError(f"num_samples must be at least 1; got {spec.num_samples}")
    if spec.max_tokens < 1:
        raise EngineError(f"max_tokens must be at least 1; got {spec.max_tokens}")
    if spec.temperature < 0:
        raise EngineError(f"temperature must be >= 0; got {spec.temperature}")
    if not 0 < spec.top_p <= 1:
        raise EngineError(f"top_p must be in (0, 1]; got {spec.top_p}")
    if spec.seed is not None and not SEED_MIN <= spec.seed <= SEED_MAX:
        digits = str(spec.seed)
        shown = digits if len(digits) <= 24 else f"a {len(digits)}-digit number"
        raise EngineError(f"seed must be an integer from -2**63 to 2**64-1; got {shown}")
    bad = [t for t in spec.prompt if not 0 <= t < vocab]
    if bad:
        raise EngineError(f"prompt token id {bad[0]} is outside the vocabulary (size {vocab})")
    if max_len and len(spec.prompt) + spec.max_tokens > max_len:
        raise EngineError(
            f"prompt ({len(spec.prompt)} tokens) + max_tokens ({spec.max_tokens}) exceeds the "
            f"model's context of {max_len} tokens"
        )


def _filter_logits(logits: torch.Tensor, rows: Sequence[_Row]) -> torch.Tensor:
    """Apply per-row top-k and top-p by masking to -inf (only when some row asks for it)."""
    top_k = [r.spec.top_k for r in rows]
    top_p = [r.spec.top_p for r in rows]
    vocab = logits.shape[-1]
    if all(k <= 0 or k >= vocab for k in top_k) and all(p >= 1.0 for p in top_p):
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    ranks = torch.arange(vocab, device=logits.device).expand_as(sorted_logits)
    k = torch.tensor([kk if 0 < kk < vocab else vocab for kk in top_k], device=logits.device)
    drop = ranks >= k[:, None]
    probs = sorted_logits.softmax(-1)
    before = probs.cumsum(-1) - probs  # mass strictly above this token
    p = torch.tensor(top_p, device=logits.device, dtype=probs.dtype)
    drop |= before >= p[:, None]
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.empty_like(logits).scatter_(-1, order, sorted_logits)


def _choose(logits: torch.Tensor, rows: Sequence[_Row]) -> tuple[list[int], list[float]]:
    logits = logits.float()
    temps = torch.tensor([r.spec.temperature for r in rows], device=logits.device)
    greedy = temps == 0
    scaled = logits / torch.where(greedy, torch.ones_like(temps), temps)[:, None]
    logprobs = scaled.log_softmax(-1)
    filtered = _filter_logits(scaled, rows)
    probs = filtered.softmax(-1).cpu()
    picks: list[int] = []
    for i, row in enumerate(rows):
        if greedy[i]:
            picks.append(int(logits[i].argmax()))
        else:
            picks.append(int(torch.multinomial(probs[i], 1, generator=row.generator)))
    chosen = logprobs[torch.arange(len(rows)), torch.tensor(picks, device=logits.device)]
    return picks, chosen.tolist()


def _stopped(row: _Row, tokenizer, eos: set[int]) -> str | None:
    if row.spec.cancel is not None and row.spec.cancel.is_set():
        return "length"
    last = row.tokens[-1]
    if (last in eos and not row.spec.ignore_eos) or last in row.spec.stop_tokens:
        return "stop"
    if row.spec.stop_strings:
        text = tokenizer.decode(row.tokens, skip_special_tokens=False)
        if any(s in text for s in row.spec.stop_strings):
            return "stop"
    if len(row.tokens) >= (row.spec.max_tokens or 0):
        return "length"
    return None


def _cache_keyword(model: torch.nn.Module) -> str:
    """The forward keyword for the KV cache: ``cache`` where transformers has renamed it (5.24+
    warns on the old name), else ``past_key_values`` (5.23)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT
    params = inspect.signature(type(base).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _make_rows(specs: Sequence[SampleSpec], device: torch.device) -> list[_Row]:
    rows = []
    for spec in specs:
        gen = torch.Generator(device="cpu")
        gen.manual_seed(spec.seed if spec.seed is not None else int(torch.randint(2**62, ())))
        rows.extend(_Row(spec, gen, i) for i in range(spec.num_samples))
    return rows


@torch.no_grad()
def sample_batch(
    model: torch.nn.Module,
    tokenizer,
    specs: Sequence[SampleSpec],
    eos_token_ids: Sequence[int],
    pad_token_id: int,
) -> list[list[Sampled]]:
    """Sample every spec's ``num_samples`` continuations in one batched decode loop."""
    config = model.config
    vocab = model.get_output_embeddings().weight.shape[0]
    max_len = getattr(config, "max_position_embeddings", None)
    specs = [_with_budget(spec, max_len) for spec in specs]
    for spec in specs:
        _check(spec, vocab, max_len)
    device = model.get_output_embeddings().weight.device
    rows = _make_rows(specs, device)
    eos = set(eos_token_ids)

    width = max(len(r.spec.prompt) for r in rows)
    ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.spec.prompt)
        ids[i, width - n :] = torch.tensor(row.spec.prompt)
        mask[i, width - n :] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=config)
    cache_kw = _cache_keyword(model)
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        **{cache_kw: cache},
        use_cache=True,
        logits_to_keep=1,
    )
    live = list(range(len(rows)))
    next_pos = positions[:, -1] + 1
    logits = out.logits[:, -1]
    while True:
        picks, lps = _choose(logits, [rows[i] for i in live])
        keep = []
        for j, i in enumerate(live):
            rows[i].tokens.append(picks[j])
            rows[i].logprobs.append(lps[j])
            if rows[i].spec.on_token is not None:
                rows[i].spec.on_token(rows[i].index, picks[j])
            rows[i].stop_reason = _stopped(rows[i], tokenizer, eos)
            if rows[i].stop_reason is None:
                keep.append(j)
        if not keep:
            break
        if len(keep) < len(live):
            sel = torch.tensor(keep, device=device)
            cache.batch_select_indices(sel)
            mask, next_pos = mask[sel], next_pos[sel]
            picks = [picks[j] for j in keep]
            live = [live[j] for j in keep]
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
        out = model(
            input_ids=torch.tensor(picks, device=device)[:, None],
            attention_mask=mask,
            position_ids=next_pos[:, None],
            **{cache_kw: cache},
            use_cache=True,
        )
        next_pos = next_pos + 1
        logits = out.logits[:, -1]

    results: list[list[Sampled]] = []
    it = iter(rows)
    for spec in specs:
        results.append(
            [
                Sampled(r.tokens, r.logprobs, r.stop_reason or "length")
                for r in (next(it) for _ in range(spec.num_samples))
            ]
        )
    return results
