"""OpenAI ``logprobs`` and ``echo`` on ``/v1/completions``: what loglikelihood tasks read.

lm-evaluation-harness's ``local-completions`` model scores a multiple-choice or loglikelihood
task by sending context + continuation as the prompt with ``echo: true``, ``logprobs: 1`` and
``max_tokens: 1``, then summing ``token_logprobs`` over the continuation and comparing each
token's logprob with the best of ``top_logprobs`` (is it the greedy choice?). So a choice's
``logprobs`` object is OpenAI's: ``tokens`` (each token's text), ``token_logprobs``,
``top_logprobs`` (the ``k`` likeliest tokens at each position, text → logprob) and
``text_offset`` (where each token starts in the choice's text), for the prompt's tokens first
when ``echo`` is set (the first prompt token has no prefix: ``None`` in both lists, as OpenAI
answers) and then for the generated ones.

All numbers come from one scoring pass over prompt + generated tokens on the engine's worker
(``Engine.top_logprobs``, with the adapter the request names), so prompt and answer positions
are computed alike. Generated tokens are all reported (the end-of-sequence token too: a client
counts on one entry per generated token) unless a stop string cut the text, in which case
tokens that start after the cut are left out, as OpenAI leaves out the stop sequence.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from evaltune.engine import Engine
from evaltune.server.openai_schema import Choice

__all__ = ["attach_logprobs"]


def _texts(tokenizer: Any, ids: list[int]) -> list[str]:
    return [tokenizer.decode([t], skip_special_tokens=False) for t in ids]


def _offsets(texts: list[str]) -> list[int]:
    offsets, at = [], 0
    for text in texts:
        offsets.append(at)
        at += len(text)
    return offsets


def _top(tokenizer: Any, alternatives: list[tuple[int, float]]) -> dict[str, float]:
    top: dict[str, float] = {}
    for token, lp in alternatives:  # two ids with the same text keep the likelier one
        text = tokenizer.decode([token], skip_special_tokens=False)
        top[text] = max(lp, top.get(text, float("-inf")))
    return top


def _logprobs_object(
    tokenizer: Any,
    sequence: list[int],
    scored: list[tuple[float, list[tuple[int, float]]]],
    first: int,
) -> dict[str, Any]:
    """OpenAI's object for ``sequence[first:]``; ``scored[i]`` is the score of token ``i + 1``."""
    ids = sequence[first:]
    texts = _texts(tokenizer, ids)
    token_logprobs: list[float | None] = []
    top_logprobs: list[dict[str, float] | None] = []
    for position in range(first, len(sequence)):
        if position == 0:
            token_logprobs.append(None)
            top_logprobs.append(None)
            continue
        lp, alternatives = scored[position - 1]
        token_logprobs.append(lp)
        top_logprobs.append(_top(tokenizer, alternatives))
    return {
        "tokens": texts,
        "token_logprobs": token_logprobs,
        "top_logprobs": top_logprobs,
        "text_offset": _offsets(texts),
    }


def _kept(tokenizer: Any, choice: Choice) -> list[int]:
    """The generated tokens to report: all of them, unless a stop string cut the text."""
    full = tokenizer.decode(choice.token_ids, skip_special_tokens=True)
    if len(choice.text) >= len(full):
        return list(choice.token_ids)
    kept, at = [], 0
    for token, text in zip(choice.token_ids, _texts(tokenizer, choice.token_ids), strict=True):
        if at >= len(choice.text):
            break
        kept.append(token)
        at += len(text)
    return kept


async def attach_logprobs(
    engine: Engine,
    folder: Path | None,
    prompts: list[list[int]],
    prompt_texts: list[str],
    choices: list[Choice],
    n: int,
    k: int | None,
    echo: bool,
) -> None:
    """Fill each choice's ``logprobs`` (when ``k`` is set) and, with ``echo``, put its prompt's
    text in front of its text. ``choices`` are ``n`` per prompt, in prompt order."""
    tokenizer = engine.tokenizer
    generated = [_kept(tokenizer, c) for c in choices]
    sequences = [prompts[i // n] + generated[i] for i in range(len(choices))]
    scored: list[Any] = [None] * len(choices)
    if k is not None:

        def score() -> list[Any]:
            slot = None if folder is None else engine.sampler_slot(folder)
            return engine.top_logprobs(slot, sequences, max(k, 1))

        scored = await asyncio.wrap_future(engine.submit(score))
    for i, choice in enumerate(choices):
        prompt = prompts[i // n]
        if k is not None:
            first = 0 if echo else len(prompt)
            choice.logprobs = _logprobs_object(tokenizer, sequences[i], scored[i], first)
            if k == 0:  # only the chosen token's logprob, as OpenAI's logprobs: 0
                choice.logprobs["top_logprobs"] = [
                    None if t is None else {} for t in choice.logprobs["top_logprobs"]
                ]
        if echo:
            choice.text = prompt_texts[i // n] + choice.text
