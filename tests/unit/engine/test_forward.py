"""``run_forward`` / ``sequence_logprobs``: packing, selective logits, gradients, chunking, errors.

Every number is checked against plain transformers / peft on the same weights: a packed call
against one call per datum, the engine's selective (softcapped) projection against
``model(input_ids).logits``, and its gradients against autograd through the full logits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

import evaltune.engine.forward as fwd
from evaltune.engine import ForwardItem, LoraSpec, lora
from evaltune.engine.forward import run_forward, sequence_logprobs
from evaltune.errors import EngineError

LENGTHS = (21, 13, 30)  # all longer than the tiny model's sliding window (8)


def _load(model_dir: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> torch.nn.Module:
    return _load(tiny_model_dir)


@pytest.fixture
def peft_model(tiny_model_dir: Path) -> torch.nn.Module:
    """A fresh PEFT model whose LoRA B is non-zero, so every LoRA factor gets a gradient."""
    base = _load(tiny_model_dir)
    model = lora.add_adapter(base, "ad", lora.lora_config(base, LoraSpec(rank=4)), seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model


def _sequences(vocab: int, lengths: tuple[int, ...] = LENGTHS) -> list[list[int]]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randint(4, vocab, (n,), generator=gen).tolist() for n in lengths]


def _items(seqs: list[list[int]], weights: list[torch.Tensor] | None = None) -> list[ForwardItem]:
    items = []
    for i, s in enumerate(seqs):
        inputs = {"target_tokens": torch.tensor(s[1:])}
        if weights is not None:
            inputs["weights"] = weights[i]
        items.append(ForwardItem(s[:-1], inputs))
    return items


def _mixed_weights(seqs: list[list[int]]) -> list[torch.Tensor]:
    """Zero on roughly a third of the positions (including the first), varied elsewhere."""
    out = []
    for s in seqs:
        n = len(s) - 1
        w = torch.linspace(0.5, 1.5, n)
        w[::3] = 0.0
        out.append(w)
    return out


def _direct_logprobs(model: torch.nn.Module, seq: list[int]) -> torch.Tensor:
    """Target logprobs from the model's own full logits (HF applies the softcap itself)."""
    logits = model(input_ids=torch.tensor([seq[:-1]])).logits[0].float()
    return logits.log_softmax(-1).gather(-1, torch.tensor(seq[1:])[:, None])[:, 0]


def _lora_grads(model: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    return {
        n: (None if p.grad is None else p.grad.clone())
        for n, p in model.named_parameters()
        if "lora_" in n
    }


def _zero_grads(model: torch.nn.Module) -> None:
    for p in model.parameters():
        p.grad = None


def _vocab(model: torch.nn.Module) -> int:
    return int(model.config.vocab_size)


# -- packing ---------------------------------------------------------------------------------
def test_packed_datums_equal_separate_calls(model) -> None:
    seqs = _sequences(_vocab(model))
    packed = run_forward(model, _items(seqs), "cross_entropy", None, backward=False)
    assert packed.num_tokens == sum(LENGTHS) - len(LENGTHS)
    total = 0.0
    for seq, lp in zip(seqs, packed.logprobs, strict=True):
        alone = run_forward(model, _items([seq]), "cross_entropy", None, backward=False)
        assert lp.shape == (len(seq) - 1,) and lp.dtype == torch.float32
        torch.testing.assert_close(lp, alone.logprobs[0], atol=1e-5, rtol=0)
        total += alone.loss
    assert packed.loss == pytest.approx(total, rel=1e-5)


def test_sequence_logprobs_packs_and_keeps_order(model) -> None:
    seqs = _sequences(_vocab(model))
    # Degenerate sequences in between keep their slot (an empty list) and shift nothing.
    mixed = [seqs[0], [5], seqs[1], [], seqs[2]]
    packed = sequence_logprobs(model, mixed)
    assert packed[1] == [] and packed[3] == []
    for seq, got in zip(seqs, (packed[0], packed[2], packed[4]), strict=True):
        alone = sequence_logprobs(model, [seq])[0]
        assert len(got) == len(seq) - 1
        torch.testing.assert_close(torch.tensor(got), torch.tensor(alone), atol=1e-5, rtol=0)
        with torch.no_grad():
            direct = _direct_logprobs(model, seq)
        torch.testing.assert_close(torch.tensor(got), direct, atol=1e-5, rtol=0)
    assert sequence_logprobs(model, [[], [3]]) == [[], []]


# -- selective logits ------------------------------------------------------------------------
@pytest.mark.parametrize("backward", [False, True])
def test_target_logprobs_equal_full_softcapped_logits(peft_model, backward: bool) -> None:
    # With backward and mixed weights, both the no-grad and the with-grad projection are used.
    seqs = _sequences(_vocab(peft_model))
    out = run_forward(
        peft_model, _items(seqs, _mixed_weights(seqs)), "cross_entropy", None, backward=backward
    )
    for seq, lp in zip(seqs, out.logprobs, strict=True):
        with torch.no_grad():
            direct = _direct_logprobs(peft_model, seq)
        torch.testing.assert_close(lp, direct, atol=1e-5, rtol=0)


def test_softcap_is_applied(model, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the softcap the numbers move well beyond the tolerance used above, so the
    equality tests really exercise the softcap path."""
    seqs = _sequences(_vocab(model))
    assert model.config.final_logit_softcapping == 30.0
    capped = run_forward(model, _items(seqs), "cross_entropy", None, backward=False)
    monkeypatch.setattr(model.config, "final_logit_softcapping", None)
    uncapped = run_forward(model, _items(seqs), "cross_entropy", None, backward=False)
    diff = max(
        float((a - b).abs().max()) for a, b in zip(capped.logprobs, uncapped.logprobs, strict=True)
    )
    assert diff > 1e-4


# -- gradients -------------------------------------------------------------------------------
def test_gradients_equal_direct_autograd(peft_model) -> None:
    seqs = _sequences(_vocab(peft_model))
    weights = _mixed_weights(seqs)
    out = run_forward(peft_model, _items(seqs, weights), "cross_entropy", None, backward=True)
    ours = _lora_grads(peft_model)
    _zero_grads(peft_model)

    expected_loss = torch.zeros(())
    for seq, w in zip(seqs, weights, strict=True):
        loss = -(w * _direct_logprobs(peft_model, seq)).sum()
        loss.backward()
        expected_loss += loss.detach()
    theirs = _lora_grads(peft_model)

    assert out.loss == pytest.approx(float(expected_loss), rel=1e-5)
    assert out.num_loss_tokens == sum(int((w != 0).sum()) for w in weights)
    assert set(ours) == set(theirs) and len(ours) > 0
    for name, grad in theirs.items():
        assert grad is not None and ours[name] is not None, name
        assert grad.abs().max() > 0, name
        # Elements near zero get an absolute tolerance on the tensor's own scale.
        scale = float(grad.abs().max())
        torch.testing.assert_close(ours[name], grad, rtol=1e-4, atol=1e-4 * scale)


def test_gradients_accumulate_across_calls(peft_model) -> None:
    seqs = _sequences(_vocab(peft_model))
    items = _items(seqs, _mixed_weights(seqs))
    run_forward(peft_model, items, "cross_entropy", None, backward=True)
    once = _lora_grads(peft_model)
    run_forward(peft_model, items, "cross_entropy", None, backward=True)
    for name, grad in _lora_grads(peft_model).items():
        scale = float(once[name].abs().max())
        torch.testing.assert_close(grad, 2 * once[name], rtol=1e-5, atol=1e-5 * scale)


def test_zero_weights_give_no_gradient_and_zero_loss(peft_model) -> None:
    seqs = _sequences(_vocab(peft_model))
    zeros = [torch.zeros(len(s) - 1) for s in seqs]
    out = run_forward(peft_model, _items(seqs, zeros), "cross_entropy", None, backward=True)
    assert out.loss == 0.0
    assert out.num_loss_tokens == 0
    assert all(g is None for g in _lora_grads(peft_model).values())
    # Logprobs are still returned for every token.
    assert [len(lp) for lp in out.logprobs] == [n - 1 for n in LENGTHS]
    assert all(bool((lp < 0).all()) for lp in out.logprobs)


def test_forward_without_backward_leaves_no_gradient(peft_model) -> None:
    seqs = _sequences(_vocab(peft_model))
    run_forward(peft_model, _items(seqs), "cross_entropy", None, backward=False)
    assert all(g is None for g in _lora_grads(peft_model).values())


# -- chunking --------------------------------------------------------------------------------
def test_chunked_projection_changes_nothing(peft_model, monkeypatch: pytest.MonkeyPatch) -> None:
    seqs = _sequences(_vocab(peft_model))
    items = _items(seqs, _mixed_weights(seqs))
    whole = run_forward(peft_model, items, "cross_entropy", None, backward=True)
    whole_grads = _lora_grads(peft_model)
    _zero_grads(peft_model)

    calls = {"checkpoint": 0}
    real_checkpoint = fwd.checkpoint

    def counting_checkpoint(*args, **kwargs):
        calls["checkpoint"] += 1
        return real_checkpoint(*args, **kwargs)

    monkeypatch.setattr(fwd, "LOGITS_BUDGET", 1)  # -> chunks of the 16-row minimum
    monkeypatch.setattr(fwd, "checkpoint", counting_checkpoint)
    chunked = run_forward(peft_model, items, "cross_entropy", None, backward=True)
    n_grad = chunked.num_loss_tokens
    assert n_grad > 32
    assert calls["checkpoint"] == -(-n_grad // 16)  # every with-grad chunk is checkpointed

    assert chunked.loss == pytest.approx(whole.loss, rel=1e-6)
    for a, b in zip(chunked.logprobs, whole.logprobs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    for name, grad in _lora_grads(peft_model).items():
        scale = float(whole_grads[name].abs().max())
        torch.testing.assert_close(grad, whole_grads[name], rtol=1e-4, atol=1e-4 * scale)


def test_chunked_sequence_logprobs(model, monkeypatch: pytest.MonkeyPatch) -> None:
    seqs = _sequences(_vocab(model))
    whole = sequence_logprobs(model, seqs)
    monkeypatch.setattr(fwd, "LOGITS_BUDGET", 1)
    chunked = sequence_logprobs(model, seqs)
    for a, b in zip(chunked, whole, strict=True):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-6, rtol=0)


# -- errors ----------------------------------------------------------------------------------
def _one(model, n: int = 6) -> list[ForwardItem]:
    return _items(_sequences(_vocab(model), (n + 1,)))


def test_unknown_loss_fn_lists_supported(model) -> None:
    with pytest.raises(EngineError, match="'cross_entrpy'") as err:
        run_forward(model, _one(model), "cross_entrpy", None, backward=False)
    assert "cross_entropy, importance_sampling, ppo" in str(err.value)


def test_wrong_length_weights_names_datum_and_shape(model) -> None:
    items = _items(_sequences(_vocab(model), (6, 9)))
    items[0].inputs["weights"] = torch.ones(5)
    items[1].inputs["weights"] = torch.ones(5)  # datum 1 has 8 input tokens
    with pytest.raises(EngineError) as err:
        run_forward(model, items, "cross_entropy", None, backward=False)
    msg = str(err.value)
    assert "datum 1" in msg and "'weights'" in msg
    assert "(5,)" in msg and "expected (8,)" in msg


@pytest.mark.parametrize("where", ["tokens", "target_tokens"])
@pytest.mark.parametrize("bad", [10_000, -1])
def test_out_of_vocab_token(model, where: str, bad: int) -> None:
    items = _one(model)
    if where == "tokens":
        items[0].tokens[2] = bad
    else:
        items[0].inputs["target_tokens"][2] = bad
    with pytest.raises(EngineError) as err:
        run_forward(model, items, "cross_entropy", None, backward=False)
    msg = str(err.value)
    assert "datum 0" in msg and f"token id {bad}" in msg
    assert f"size {_vocab(model)}" in msg


def test_ppo_without_advantages(model) -> None:
    items = _one(model)
    items[0].inputs["logprobs"] = torch.full((6,), -1.0)
    with pytest.raises(EngineError) as err:
        run_forward(model, items, "ppo", None, backward=False)
    msg = str(err.value)
    assert "datum 0" in msg and "'ppo'" in msg and "'advantages'" in msg
    assert "logprobs" in msg and "target_tokens" in msg  # the keys it did get


def test_empty_datum_list(model) -> None:
    with pytest.raises(EngineError, match="at least one datum"):
        run_forward(model, [], "cross_entropy", None, backward=False)


def test_empty_datum(model) -> None:
    items = [*_one(model), ForwardItem([], {"target_tokens": torch.tensor([], dtype=torch.long)})]
    with pytest.raises(EngineError, match="datum 1: model_input is empty"):
        run_forward(model, items, "cross_entropy", None, backward=False)
