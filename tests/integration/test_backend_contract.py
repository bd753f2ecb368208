"""The backend contract: what any ServiceClient evaltune uses must do, checked against torch.

Parametrised over backends (``BACKENDS``); the Tinker backend joins by adding a factory that
starts ``evaltune serve`` and returns an SDK ``ServiceClient`` pointed at it. Every number is
checked against an independent computation (plain transformers / peft on the same weights),
never against the backend itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from peft import PeftModel
from tinker import types
from transformers import AutoModelForCausalLM

from evaltune.backends import contract
from evaltune.backends.local import ServiceClient, checkpoint_folder

PROMPT = "Question: What is two plus two? Answer:"
ANSWER = " four."


@dataclass
class Backend:
    name: str
    service: Any
    base_model: str
    folder: Callable[[str], Path]  # checkpoint path -> local PEFT folder


def _local(model_dir: Path, tmp: Path) -> Backend:
    service = ServiceClient(checkpoint_dir=tmp / "ckpt")
    return Backend("local", service, str(model_dir), lambda p: checkpoint_folder(p, tmp / "ckpt"))


def _tinker(model_dir: Path, tmp: Path) -> Backend:
    """The unmodified tinker SDK (through evaltune.backends.tinker) against `evaltune serve`:
    one server process per model for the whole session, stopped at exit."""
    from evaltune.backends.tinker import make_service_client
    from serve_once import serve_once

    server = serve_once(model_dir)
    service = make_service_client(server.base_url, server.key_env)
    return Backend("tinker", service, str(model_dir), server.folder)


BACKENDS: dict[str, Callable[[Path, Path], Backend]] = {"local": _local, "tinker": _tinker}


@pytest.fixture(params=sorted(BACKENDS))
def backend(
    request: pytest.FixtureRequest, tiny_model_dir: Path, tmp_path: Path
) -> Iterator[Backend]:
    yield BACKENDS[request.param](tiny_model_dir, tmp_path)


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def make_datum(tokenizer, prompt: str = PROMPT, answer: str = ANSWER) -> types.Datum:
    p = tokenizer(prompt).input_ids
    full = tokenizer(prompt + answer).input_ids
    weights = [0.0] * (len(p) - 1) + [1.0] * (len(full) - len(p))
    return types.Datum(
        model_input=types.ModelInput.from_ints(full[:-1]),
        loss_fn_inputs={"target_tokens": full[1:], "weights": weights},
    )


def direct_logprobs(model: torch.nn.Module, datum: types.Datum) -> torch.Tensor:
    ids = torch.tensor([datum.model_input.to_ints()])
    targets = datum.loss_fn_inputs["target_tokens"].to_torch().long()
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    return logits.log_softmax(-1).gather(-1, targets[:, None])[:, 0]


def train(tc, data, steps: int, lr: float = 1e-2) -> list[float]:
    losses = []
    for _ in range(steps):
        fb = tc.forward_backward(data, "cross_entropy")
        tc.optim_step(types.AdamParams(learning_rate=lr)).result()
        losses.append(fb.result().metrics["loss:sum"])
    return losses


def test_cross_entropy_is_weighted_nll_sum(backend: Backend, reference) -> None:
    tc = backend.service.create_lora_training_client(backend.base_model, rank=8, seed=0).result()
    data = [make_datum(tc.get_tokenizer()), make_datum(tc.get_tokenizer(), "The capital", " of")]
    out = tc.forward(data, "cross_entropy").result()
    expected_loss = 0.0
    for datum, output in zip(data, out.loss_fn_outputs, strict=True):
        lp = direct_logprobs(reference, datum)  # a fresh adapter (B = 0) is the base model
        np.testing.assert_allclose(output["logprobs"].to_numpy(), lp.numpy(), atol=1e-5)
        expected_loss += float(-(datum.loss_fn_inputs["weights"].to_torch() * lp).sum())
    assert out.metrics["loss:sum"] == pytest.approx(expected_loss, rel=1e-5)


def test_twenty_steps_lower_the_loss(backend: Backend) -> None:
    tc = backend.service.create_lora_training_client(backend.base_model, rank=8, seed=0).result()
    losses = train(tc, [make_datum(tc.get_tokenizer())], steps=20)
    assert losses[-1] < 0.2 * losses[0], losses


def test_optimizer_state_survives_save_and_restore(backend: Backend) -> None:
    svc = backend.service
    tc = svc.create_lora_training_client(backend.base_model, rank=8, seed=1).result()
    data = [make_datum(tc.get_tokenizer())]
    train(tc, data, steps=3, lr=5e-3)
    path = tc.save_state("mid").result().path
    train(tc, data, steps=1, lr=5e-3)
    uninterrupted = tc.forward(data, "cross_entropy").result().metrics["loss:sum"]

    resumed = svc.create_training_client_from_state_with_optimizer(path).result()
    train(resumed, data, steps=1, lr=5e-3)
    assert resumed.forward(data, "cross_entropy").result().metrics["loss:sum"] == pytest.approx(
        uninterrupted, rel=1e-5, abs=1e-5
    )
    # Weights alone (fresh AdamW) take a different step: the optimizer state really mattered.
    fresh = svc.create_training_client_from_state(path).result()
    assert fresh.forward(data, "cross_entropy").result().metrics["loss:sum"] != pytest.approx(
        uninterrupted, rel=1e-3
    )  # before stepping it matches the saved weights, not the stepped ones
    train(fresh, data, steps=1, lr=5e-3)
    assert fresh.forward(data, "cross_entropy").result().metrics["loss:sum"] != pytest.approx(
        uninterrupted, rel=1e-3
    )


def test_sampler_checkpoint_loads_in_peft_with_same_logits(
    backend: Backend, tiny_model_dir
) -> None:
    tc = backend.service.create_lora_training_client(backend.base_model, rank=8, seed=2).result()
    datum = make_datum(tc.get_tokenizer())
    train(tc, [datum], steps=5)
    path = tc.save_weights_for_sampler("s1").result().path
    ours = np.asarray(
        tc.forward([datum], "cross_entropy").result().loss_fn_outputs[0]["logprobs"].to_numpy()
    )

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, str(backend.folder(path))).eval()
    ids = torch.tensor([datum.model_input.to_ints()])
    with torch.no_grad():
        logits = peft_model(input_ids=ids).logits[0].float()
    targets = datum.loss_fn_inputs["target_tokens"].to_torch().long()
    theirs = logits.log_softmax(-1).gather(-1, targets[:, None])[:, 0].numpy()
    assert np.abs(ours - theirs).max() < 1e-4
    # And the sampling client on that checkpoint scores the same tokens the same way.
    sc = backend.service.create_sampling_client(model_path=path).result()
    full = [*datum.model_input.to_ints(), int(targets[-1])]
    lps = sc.compute_logprobs(types.ModelInput.from_ints(full)).result()
    assert lps[0] is None
    assert np.abs(np.array(lps[1:]) - theirs).max() < 1e-4


def _greedy_reference(model, prompt_ids: list[int], n: int) -> list[int]:
    out = model.generate(
        torch.tensor([prompt_ids]),
        max_new_tokens=n,
        do_sample=False,
        min_new_tokens=n,
        pad_token_id=0,
    )
    return out[0, len(prompt_ids) :].tolist()


def test_greedy_sample_equals_transformers_generate(backend: Backend, reference) -> None:
    sc = backend.service.create_sampling_client(base_model=backend.base_model).result()
    tok = sc.get_tokenizer()
    for text in (PROMPT, "The quick brown fox"):
        ids = tok(text).input_ids
        expected = _greedy_reference(reference, ids, 12)
        params = types.SamplingParams(max_tokens=12, temperature=0.0)
        res = sc.sample(types.ModelInput.from_ints(ids), 2, params).result()
        for seq in res.sequences:
            n = len(seq.tokens)
            assert seq.tokens == expected[:n]
            assert seq.stop_reason == ("length" if n == 12 else "stop")
            assert len(seq.logprobs) == n and all(lp <= 0 for lp in seq.logprobs)


def test_seed_makes_sampling_reproducible(backend: Backend) -> None:
    sc = backend.service.create_sampling_client(base_model=backend.base_model).result()
    prompt = types.ModelInput.from_ints(sc.get_tokenizer()(PROMPT).input_ids)

    def draw(seed: int) -> list[list[int]]:
        params = types.SamplingParams(max_tokens=16, temperature=1.0, seed=seed)
        return [s.tokens for s in sc.sample(prompt, 4, params).result().sequences]

    first = draw(7)
    assert draw(7) == first
    assert draw(8) != first
    assert len({tuple(t) for t in first}) > 1  # samples within one request differ


def test_stop_token_and_stop_string_are_honoured(backend: Backend) -> None:
    sc = backend.service.create_sampling_client(base_model=backend.base_model).result()
    tok = sc.get_tokenizer()
    prompt = types.ModelInput.from_ints(tok("The quick brown fox").input_ids)
    free = sc.sample(prompt, 1, types.SamplingParams(max_tokens=20, temperature=0)).result()
    tokens = free.sequences[0].tokens
    assert len(tokens) >= 6, "the tiny model should run to the token budget"
    stop_tok = tokens[3]
    first = tokens.index(stop_tok)
    by_token = (
        sc.sample(prompt, 1, types.SamplingParams(max_tokens=20, temperature=0, stop=[stop_tok]))
        .result()
        .sequences[0]
    )
    assert by_token.tokens == tokens[: first + 1] and by_token.stop_reason == "stop"

    text = tok.decode(tokens[:6])
    stop_str = text[-3:]
    by_string = (
        sc.sample(prompt, 1, types.SamplingParams(max_tokens=20, temperature=0, stop=stop_str))
        .result()
        .sequences[0]
    )
    decoded = tok.decode(by_string.tokens)
    assert stop_str in decoded and stop_str not in tok.decode(by_string.tokens[:-1])
    assert by_string.stop_reason == "stop"


def _rl_datum(tc, advantages: list[float], sampling_lp: list[float]) -> types.Datum:
    ids = tc.get_tokenizer()(PROMPT + ANSWER).input_ids
    n = len(ids) - 1
    return types.Datum(
        model_input=types.ModelInput.from_ints(ids[:-1]),
        loss_fn_inputs={
            "target_tokens": ids[1:],
            "logprobs": (sampling_lp * n)[:n],
            "advantages": (advantages * n)[:n],
        },
    )


def test_importance_sampling_and_ppo_match_hand_computation(backend: Backend) -> None:
    tc = backend.service.create_lora_training_client(backend.base_model, rank=8, seed=3).result()
    datum = _rl_datum(tc, advantages=[1.0, -0.5, 0.0, 2.0], sampling_lp=[-1.0, -3.0, -0.2])
    ce = types.Datum(
        model_input=datum.model_input,
        loss_fn_inputs={"target_tokens": datum.loss_fn_inputs["target_tokens"]},
    )
    lp = tc.forward([ce], "cross_entropy").result().loss_fn_outputs[0]["logprobs"].to_torch()
    old = datum.loss_fn_inputs["logprobs"].to_torch()
    adv = datum.loss_fn_inputs["advantages"].to_torch()
    ratio = torch.exp(lp - old)

    is_loss = tc.forward([datum], "importance_sampling").result().metrics["loss:sum"]
    assert is_loss == pytest.approx(float(-(ratio * adv).sum()), rel=1e-5)

    for low, high in ((0.8, 1.2), (0.5, 1.5)):
        expected = -torch.minimum(ratio * adv, ratio.clamp(low, high) * adv).sum()
        cfg = {"clip_low_threshold": low, "clip_high_threshold": high}
        ppo = tc.forward([datum], "ppo", cfg).result().metrics["loss:sum"]
        assert ppo == pytest.approx(float(expected), rel=1e-5)
    assert ratio.min() < 0.8 or ratio.max() > 1.2, "example should exercise the clip"


def test_rl_losses_train(backend: Backend) -> None:
    tc = backend.service.create_lora_training_client(backend.base_model, rank=8, seed=4).result()
    datum = _rl_datum(tc, advantages=[1.0], sampling_lp=[-2.0])
    before = tc.forward([datum], "ppo").result().metrics["loss:sum"]
    for _ in range(3):
        tc.forward_backward([datum], "ppo")
        tc.optim_step(types.AdamParams(learning_rate=5e-3))
    after = tc.forward([datum], "ppo").result().metrics["loss:sum"]
    assert after < before


def test_futures_are_awaitable(backend: Backend) -> None:
    tc = backend.service.create_lora_training_client(backend.base_model, rank=4, seed=0).result()
    datum = make_datum(tc.get_tokenizer())

    async def main() -> float:
        fb = tc.forward_backward([datum], "cross_entropy")
        step = tc.optim_step(types.AdamParams(learning_rate=1e-3))
        result = await fb
        await step
        return result.metrics["loss:sum"]

    assert asyncio.run(main()) > 0


def test_both_backends_satisfy_the_contract_protocols(backend: Backend) -> None:
    service = backend.service
    assert isinstance(service, contract.ServiceClient)
    training = service.create_lora_training_client(backend.base_model, rank=4).result()
    assert isinstance(training, contract.TrainingClient)
    sampler = service.create_sampling_client(base_model=backend.base_model).result()
    assert isinstance(sampler, contract.SamplingClient)
    assert isinstance(sampler.compute_logprobs(types.ModelInput.from_ints([1, 2])), contract.Future)
    # the Protocols are not vacuous: a training client is not a sampler, nor the reverse
    assert not isinstance(training, contract.SamplingClient)
    assert not isinstance(sampler, contract.TrainingClient)


def test_info_and_tokenizer(backend: Backend) -> None:
    tc = backend.service.create_lora_training_client(backend.base_model, rank=4).result()
    info = tc.get_info()
    assert info.lora_rank == 4 and info.is_lora and info.model_id
    assert (
        tc.get_tokenizer().decode(
            tc.get_tokenizer()("hello there").input_ids, skip_special_tokens=True
        )
        == "hello there"
    )
