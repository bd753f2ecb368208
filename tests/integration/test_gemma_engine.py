"""The local backend on the real embedded Gemma 3 270M (slow: converts the model on first use)."""

from __future__ import annotations

import re

import pytest
from tinker import types

from evaltune.backends.local import ServiceClient

pytestmark = pytest.mark.slow

QA = [
    ("What is the capital of Australia?", "Canberra"),
    ("What is the chemical symbol for gold?", "Au"),
    ("How many legs does a spider have?", "Eight"),
    ("What is the largest planet in the solar system?", "Jupiter"),
    ("Who wrote 'Pride and Prejudice'?", "Jane Austen"),
    ("What is the boiling point of water in Celsius?", "100"),
    ("What is the square root of 81?", "9"),
    ("Which ocean is the largest?", "The Pacific"),
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> ServiceClient:
    return ServiceClient(checkpoint_dir=tmp_path_factory.mktemp("gemma-ckpt"))


def _datum(tokenizer, question: str, answer: str) -> types.Datum:
    prompt = tokenizer.encode(f"Question: {question}\nAnswer:")
    completion = tokenizer.encode(f" {answer}\n", add_special_tokens=False)
    tokens = prompt + completion
    weights = [0.0] * len(prompt) + [1.0] * len(completion)
    return types.Datum(
        model_input=types.ModelInput.from_ints(tokens[:-1]),
        loss_fn_inputs={"target_tokens": tokens[1:], "weights": weights[1:]},
    )


def test_greedy_continuation_is_fluent(service: ServiceClient) -> None:
    sampler = service.create_sampling_client(base_model="gemma-3-270m").result()
    tok = sampler.get_tokenizer()
    prompt = tok.encode("The capital of France is")
    assert prompt[0] == tok.bos_token_id
    params = types.SamplingParams(max_tokens=20, temperature=0.0)
    seq = sampler.sample(types.ModelInput.from_ints(prompt), 1, params).result().sequences[0]
    text = tok.decode(seq.tokens, skip_special_tokens=True)
    words = re.findall(r"[A-Za-z]+", text)
    assert len(words) >= 5, text
    assert (
        "Paris" in text
        or sum(w.lower() in {"the", "of", "and", "is", "a", "in"} for w in words) >= 2
    ), text


def test_three_sft_steps_lower_the_loss(service: ServiceClient) -> None:
    tc = service.create_lora_training_client("gemma-3-270m", rank=16, seed=0).result()
    data = [_datum(tc.get_tokenizer(), q, a) for q, a in QA]
    losses = []
    for _ in range(3):
        fb = tc.forward_backward(data, "cross_entropy")
        tc.optim_step(types.AdamParams(learning_rate=3e-4))
        losses.append(fb.result().metrics["loss:sum"])
    final = tc.forward(data, "cross_entropy").result().metrics["loss:sum"]
    assert final < 0.7 * losses[0], (losses, final)
    assert losses == sorted(losses, reverse=True), losses
