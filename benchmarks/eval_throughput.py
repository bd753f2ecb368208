"""Evaluation throughput: evaltune's batched sampler against one-at-a-time ``transformers.generate``.

    python benchmarks/eval_throughput.py                           # gemma-3-270m, 32 prompts
    python benchmarks/eval_throughput.py --model ./tiny-model --prompts 64 --max-new-tokens 32
    python benchmarks/eval_throughput.py --fixed-length            # both ignore EOS: equal work

One process, one model, the same prompts. The model is loaded once by the local engine, and
the very same ``nn.Module`` (same weights, dtype and device) serves both sides:

- **batched**: every prompt submitted to ``SamplingClient.sample`` before any result is
  awaited, as an evaltune evaluation does; the engine coalesces them into batched KV-cache
  decodes (``batches`` says how many);
- **loop**: ``model.generate(input_ids, do_sample=False, max_new_tokens=N)`` per prompt, one
  after another, as a plain Hugging Face evaluation loop does.

Both decode greedily with the same ``max_new_tokens`` and stop at the same tokens (the chat
template's end of turn and EOS), so their outputs should agree token for token; the script
reports how many do, and where the first difference is for those that do not (left padding in
a batch changes floating-point summation order, which can flip a near-tie). It prints samples/s
and generated tokens/s for each side and the ratio. A warm-up call on each side is not timed.
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import torch
from tinker import types

from evaltune.backends.local import ServiceClient
from evaltune.data import Message, get_renderer
from evaltune.engine import get_engine

QUESTIONS = [
    "What is the capital of France?",
    "Name three primary colours.",
    "What is 17 plus 25?",
    "Who wrote Romeo and Juliet?",
    "How many legs does a spider have?",
    "What is the boiling point of water in Celsius?",
    "Translate 'good morning' into Spanish.",
    "What is the largest planet in the solar system?",
    "Give a synonym for 'happy'.",
    "What is 9 times 7?",
    "What gas do plants absorb from the air?",
    "Which ocean is the largest?",
    "What is the square root of 144?",
    "Name a mammal that can fly.",
    "What language is spoken in Brazil?",
    "How many days are in a leap year?",
    "What is the chemical symbol for gold?",
    "Who painted the Mona Lisa?",
    "What is the freezing point of water in Fahrenheit?",
    "Name the longest river in Africa.",
    "What is 100 divided by 4?",
    "Which planet is known as the Red Planet?",
    "What is the opposite of 'ancient'?",
    "How many continents are there?",
    "What do bees make?",
    "What is the capital of Japan?",
    "Write a haiku about autumn.",
    "Explain what a noun is in one sentence.",
    "What is 3 cubed?",
    "Name an instrument with strings.",
    "What is the main ingredient of guacamole?",
    "In which year did the Second World War end?",
]


def prompts_for(renderer, n: int) -> list[list[int]]:
    qs = [QUESTIONS[i % len(QUESTIONS)] for i in range(n)]
    # Past the list's length, vary the wording so no two prompts are identical.
    qs = [q if i < len(QUESTIONS) else f"{q} (question {i + 1})" for i, q in enumerate(qs)]
    return [renderer.render_prompt([Message("user", q)]) for q in qs]


def run_batched(sampler, prompts, max_new: int, stop_ids: list[int]) -> list[list[int]]:
    params = types.SamplingParams(max_tokens=max_new, temperature=0.0, stop=stop_ids)
    futures = [sampler.sample(types.ModelInput.from_ints(p), 1, params) for p in prompts]
    return [list(f.result().sequences[0].tokens) for f in futures]


@torch.no_grad()
def run_loop(model, prompts, max_new: int, stop_ids: list[int], pad: int) -> list[list[int]]:
    device = next(model.parameters()).device
    # A config of our own: greedy, our stops only (none: run to max_new_tokens, as stop=[] does).
    config = copy.deepcopy(model.generation_config)
    config.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    config.update(eos_token_id=stop_ids or None, pad_token_id=pad, max_new_tokens=max_new)
    outputs = []
    for p in prompts:
        ids = torch.tensor([p], device=device)
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config
        )
        tokens = out[0, len(p) :].tolist()
        outputs.append(tokens)
    return outputs


def first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gemma-3-270m", help="alias, HF folder or HF id")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--renderer", default="auto", help="auto, chat_template, role_colon")
    parser.add_argument(
        "--fixed-length",
        action="store_true",
        help="ignore EOS on both sides, so every sample is exactly --max-new-tokens long",
    )
    args = parser.parse_args()

    service = ServiceClient()
    sampler = service.create_sampling_client(base_model=args.model).result()
    engine = get_engine(args.model)
    model, tokenizer = engine.model, engine.tokenizer
    renderer = get_renderer(args.renderer, tokenizer)
    prompts = prompts_for(renderer, args.prompts)
    stop_ids = [s for s in renderer.stop_sequences if isinstance(s, int)]
    stop_ids = sorted(set(stop_ids) | set(engine.eos_token_ids))
    if args.fixed_length:
        stop_ids = []  # Tinker semantics: stop=[] disables every stop, EOS too
    print(
        f"model {args.model} ({engine.device}, {engine.dtype}), {len(prompts)} prompts "
        f"(mean {sum(map(len, prompts)) / len(prompts):.0f} tokens), greedy, "
        f"max_new_tokens {args.max_new_tokens}, stops {stop_ids or 'none (fixed length)'}, "
        f"torch threads {torch.get_num_threads()}, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )

    run_batched(sampler, prompts[:2], 4, stop_ids)  # warm-up, not timed
    run_loop(model, prompts[:1], 4, stop_ids, engine.pad_token_id)

    before = engine.batcher.batches_run
    t0 = time.perf_counter()
    batched = run_batched(sampler, prompts, args.max_new_tokens, stop_ids)
    t_batched = time.perf_counter() - t0
    batches = engine.batcher.batches_run - before

    t0 = time.perf_counter()
    looped = run_loop(model, prompts, args.max_new_tokens, stop_ids, engine.pad_token_id)
    t_loop = time.perf_counter() - t0

    n = len(prompts)
    tok_b, tok_l = sum(map(len, batched)), sum(map(len, looped))
    print(f"{'':26}{'samples/s':>10}{'tokens/s':>10}{'seconds':>9}{'tokens':>8}")
    print(f"{'evaltune batched sampler':26}{n / t_batched:10.2f}{tok_b / t_batched:10.1f}"
          f"{t_batched:9.2f}{tok_b:8d}   ({batches} batched decode calls)")  # fmt: skip
    print(f"{'transformers.generate loop':26}{n / t_loop:10.2f}{tok_l / t_loop:10.1f}"
          f"{t_loop:9.2f}{tok_l:8d}   ({n} generate calls)")  # fmt: skip
    print(f"speed-up (samples/s, batched / loop): {t_loop / t_batched:.2f}x")

    same = [first_difference(a, b) for a, b in zip(batched, looped, strict=True)]
    agree = sum(d is None for d in same)
    print(f"greedy outputs identical: {agree}/{n}")
    for i, d in enumerate(same):
        if d is not None:
            a = tokenizer.decode(batched[i][d : d + 8])
            b = tokenizer.decode(looped[i][d : d + 8])
            print(f"  prompt {i}: first difference at token {d}: batched {a!r} vs loop {b!r}")


if __name__ == "__main__":
    main()
