"""``Engine``: what training touches, AdamW semantics, clipping, slot isolation, the sampler LRU.

The optimizer is checked against a hand-run ``torch.optim.AdamW`` fed the engine's own
gradients; isolation is checked by snapshotting every parameter before and after; the sampler
cache by loading more checkpoints than it holds and reading logprobs back.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

import evaltune.engine.engine as engine_mod
from evaltune.engine import AdamConfig, Engine, ForwardItem, LoraSpec, SampleSpec, lora
from evaltune.errors import EngineError

TEXT = "Question: What is two plus two? Answer: four."
OTHER = "The quick brown fox jumps over the lazy dog."


@pytest.fixture
def engine(tiny_model_dir: Path) -> Engine:
    return Engine(str(tiny_model_dir))


def _items(engine: Engine, *texts: str) -> list[ForwardItem]:
    items = []
    for text in texts or (TEXT,):
        ids = engine.tokenizer(text).input_ids
        items.append(ForwardItem(ids[:-1], {"target_tokens": torch.tensor(ids[1:])}))
    return items


def _snapshot(params: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in params.items()}


def _step(engine: Engine, slot: str, adam: AdamConfig | None = None) -> dict[str, float]:
    engine.forward(slot, _items(engine), "cross_entropy", backward=True)
    return engine.optim_step(slot, adam or AdamConfig(learning_rate=1e-2))


def _params(engine: Engine, slot: str) -> dict[str, torch.nn.Parameter]:
    return lora.adapter_parameters(engine.model, slot)


def _grads(engine: Engine, slot: str) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in _params(engine, slot).items()}


def _logprobs(engine: Engine, slot: str | None, text: str = TEXT) -> torch.Tensor:
    return torch.tensor(engine.logprobs(slot, [engine.tokenizer(text).input_ids])[0])


# -- what training touches -------------------------------------------------------------------
def test_only_lora_parameters_change(engine: Engine) -> None:
    slot = engine.create_training_slot(LoraSpec(rank=4, seed=0))
    named = dict(engine.model.named_parameters())
    base = {n: p for n, p in named.items() if "lora_" not in n}
    assert len(base) > 10 and not any(p.requires_grad for p in base.values())
    before_base, before_lora = _snapshot(base), _snapshot(_params(engine, slot))

    for _ in range(3):
        _step(engine, slot)

    for name, value in before_base.items():
        assert torch.equal(base[name].detach(), value), f"base parameter {name} changed"
        assert base[name].grad is None, name
    after_lora = _params(engine, slot)
    assert set(after_lora) == set(before_lora)
    for name, value in before_lora.items():
        assert not torch.equal(after_lora[name].detach(), value), f"{name} did not train"


def test_training_one_slot_leaves_another_alone(engine: Engine) -> None:
    trained = engine.create_training_slot(LoraSpec(rank=4, seed=0))
    other = engine.create_training_slot(LoraSpec(rank=4, seed=1))
    _step(engine, other)  # give the bystander non-zero B so its output depends on it
    before, lp_before = _snapshot(_params(engine, other)), _logprobs(engine, other)

    for _ in range(3):
        _step(engine, trained)

    after = _params(engine, other)
    for name, value in before.items():
        assert torch.equal(after[name].detach(), value), name
        assert after[name].grad is None, name
    torch.testing.assert_close(_logprobs(engine, other), lp_before, rtol=0, atol=0)
    assert float((_logprobs(engine, trained) - lp_before).abs().max()) > 1e-3


def test_optim_step_without_gradients_changes_nothing(engine: Engine) -> None:
    slot = engine.create_training_slot(LoraSpec(rank=4, seed=0))
    before = _snapshot(_params(engine, slot))
    metrics = engine.optim_step(slot, AdamConfig(learning_rate=1e-2))
    assert metrics == {"grad_norm": 0.0, "learning_rate": 1e-2}
    for name, p in _params(engine, slot).items():
        assert torch.equal(p.detach(), before[name])


# -- AdamW -----------------------------------------------------------------------------------
def _reference(engine: Engine, slot: str, adam: AdamConfig):
    params = {n: p.detach().clone().requires_grad_(True) for n, p in _params(engine, slot).items()}
    opt = torch.optim.AdamW(
        list(params.values()),
        lr=adam.learning_rate,
        betas=(adam.beta1, adam.beta2),
        eps=adam.eps,
        weight_decay=adam.weight_decay,
    )
    return params, opt


def _assert_params_equal(engine: Engine, slot: str, ref: dict[str, torch.Tensor]) -> None:
    for name, p in _params(engine, slot).items():
        torch.testing.assert_close(p.detach(), ref[name].detach(), rtol=1e-6, atol=1e-8)


def test_optim_step_is_torch_adamw(engine: Engine) -> None:
    # Non-default betas and a large eps, so that ignoring any of them shows in the weights.
    adam = AdamConfig(learning_rate=1e-2, beta1=0.8, beta2=0.9, eps=1e-3, weight_decay=0.1)
    slot = engine.create_training_slot(LoraSpec(rank=4, seed=0))
    ref, opt = _reference(engine, slot, adam)
    for _ in range(3):
        engine.forward(slot, _items(engine), "cross_entropy", backward=True)
        grads = _grads(engine, slot)
        metrics = engine.optim_step(slot, adam)
        for name, p in ref.items():
            p.grad = grads[name]
        opt.step()
        _assert_params_equal(engine, slot, ref)
        norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads.values()]))
        assert metrics["grad_norm"] == pytest.approx(float(norm), rel=1e-5)
        assert metrics["learning_rate"] == adam.learning_rate
        # Gradients were consumed: nothing leaks into the next step.
        assert all(p.grad is None for p in _params(engine, slot).values())


def test_weight_decay_is_decoupled_and_applied(engine: Engine) -> None:
    """With zero gradient on A (B starts at zero), one step moves A only by lr * wd * A."""
    adam = AdamConfig(learning_rate=1e-2, weight_decay=0.1)
    slot = engine.create_training_slot(LoraSpec(rank=4, seed=0))
    before = _snapshot(_params(engine, slot))
    _step(engine, slot, adam)
    for name, p in _params(engine, slot).items():
        if "lora_A" in name:
            expected = before[name] * (1 - adam.learning_rate * adam.weight_decay)
            torch.testing.assert_close(p.detach(), expected, rtol=1e-6, atol=0)


def test_grad_clip_norm_scales_the_update(engine: Engine) -> None:
    free = AdamConfig(learning_rate=1e-2, beta1=0.8, beta2=0.9, eps=1e-3)
    slot = engine.create_training_slot(LoraSpec(rank=4, seed=0))
    clipped_ref, clipped_opt = _reference(engine, slot, free)
    free_ref, free_opt = _reference(engine, slot, free)

    engine.forward(slot, _items(engine), "cross_entropy", backward=True)
    grads = _grads(engine, slot)
    norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads.values()])))
    max_norm = norm / 4
    adam = AdamConfig(**{**free.__dict__, "grad_clip_norm": max_norm})
    metrics = engine.optim_step(slot, adam)
    assert metrics["grad_norm"] == pytest.approx(norm, rel=1e-5)  # reported before clipping

    coef = max_norm / (norm + 1e-6)  # torch.nn.utils.clip_grad_norm_'s scale
    for name in grads:
        clipped_ref[name].grad = grads[name] * coef
        free_ref[name].grad = grads[name].clone()
    clipped_opt.step()
    free_opt.step()
    # A second, unclipped step: Adam's moments remember the clipped first gradient.
    engine.forward(slot, _items(engine), "cross_entropy", backward=True)
    grads = _grads(engine, slot)
    engine.optim_step(slot, free)
    for name in grads:
        clipped_ref[name].grad = grads[name].clone()
        free_ref[name].grad = grads[name].clone()
    clipped_opt.step()
    free_opt.step()

    _assert_params_equal(engine, slot, clipped_ref)
    params = _params(engine, slot)
    diff = max(float((params[n] - free_ref[n]).detach().abs().max()) for n in grads)
    assert diff > 1e-5, "clipping made no difference: the test would not catch a missing clip"


def test_grad_clip_above_the_norm_is_a_no_op(engine: Engine) -> None:
    adam = AdamConfig(learning_rate=1e-2, eps=1e-3)
    slot = engine.create_training_slot(LoraSpec(rank=4, seed=0))
    ref, opt = _reference(engine, slot, adam)
    engine.forward(slot, _items(engine), "cross_entropy", backward=True)
    grads = _grads(engine, slot)
    norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads.values()])))
    engine.optim_step(slot, AdamConfig(**{**adam.__dict__, "grad_clip_norm": 10 * norm}))
    for name, p in ref.items():
        p.grad = grads[name]
    opt.step()
    _assert_params_equal(engine, slot, ref)


# -- sampler slots ---------------------------------------------------------------------------
def _checkpoints(engine: Engine, tmp_path: Path, n: int) -> tuple[list[Path], list[torch.Tensor]]:
    slot = engine.create_training_slot(LoraSpec(rank=4, seed=0))
    folders, expected = [], []
    for i in range(n):
        _step(engine, slot, AdamConfig(learning_rate=2e-2))
        folders.append(tmp_path / f"ckpt{i}")
        engine.save_sampler(slot, folders[-1])
        expected.append(_logprobs(engine, slot))
    for a, b in itertools.pairwise(expected):
        assert float((a - b).abs().max()) > 1e-3  # each checkpoint is distinguishable
    return folders, expected


@pytest.mark.filterwarnings("ignore:Adapter .* was active which is now deleted:UserWarning")
def test_sampler_slots_are_an_lru(engine: Engine, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(engine_mod, "MAX_SAMPLER_SLOTS", 2)
    folders, expected = _checkpoints(engine, tmp_path, 3)

    def loaded() -> set[str]:
        return set(engine.model.peft_config)

    s0, s1 = engine.sampler_slot(folders[0]), engine.sampler_slot(folders[1])
    assert s0 != s1 and {s0, s1} <= loaded()
    assert engine.sampler_slot(folders[0]) == s0  # a hit, and now the most recent
    s2 = engine.sampler_slot(folders[2])
    assert s1 not in loaded() and {s0, s2} <= loaded()  # the least recently used went

    s1_again = engine.sampler_slot(folders[1])  # reloaded from disk, evicting folder 0
    assert s1_again not in (s0, s1, s2) and s0 not in loaded()
    for slot, want in ((s1_again, expected[1]), (s2, expected[2])):
        torch.testing.assert_close(_logprobs(engine, slot), want, atol=1e-6, rtol=0)
    torch.testing.assert_close(
        _logprobs(engine, engine.sampler_slot(folders[0])), expected[0], atol=1e-6, rtol=0
    )
    sampler_slots = [n for n in loaded() if n.startswith("s")]
    assert len(sampler_slots) == 2


def test_sampler_slot_of_a_non_checkpoint_folder(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="is not a LoRA checkpoint"):
        engine.sampler_slot(tmp_path)


def test_base_model_is_unaffected_by_a_trained_adapter(engine: Engine) -> None:
    prompt = engine.tokenizer(OTHER).input_ids
    spec = SampleSpec(prompt, max_tokens=10, temperature=0.0)
    before_sample = engine.sample(None, [spec])[0][0]
    before_lp = _logprobs(engine, None)

    slot = engine.create_training_slot(LoraSpec(rank=4, seed=0))
    for _ in range(5):
        _step(engine, slot, AdamConfig(learning_rate=5e-2))
    trained = engine.sample(slot, [spec])[0][0]
    assert float((_logprobs(engine, slot) - before_lp).abs().max()) > 1e-2

    after = engine.sample(None, [spec])[0][0]
    assert after.tokens == before_sample.tokens
    torch.testing.assert_close(
        torch.tensor(after.logprobs), torch.tensor(before_sample.logprobs), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(_logprobs(engine, None), before_lp, atol=1e-6, rtol=0)
    # ... and using the base model did not switch the adapter off for the slot.
    assert engine.sample(slot, [spec])[0][0].tokens == trained.tokens


# -- loading training slots ------------------------------------------------------------------
def test_optimizer_load_from_a_sampler_folder_is_refused(engine: Engine, tmp_path: Path) -> None:
    slot = engine.create_training_slot(LoraSpec(rank=4, seed=0))
    engine.save_sampler(slot, tmp_path / "sampler")
    slots_before = set(engine.model.peft_config)
    with pytest.raises(EngineError) as err:
        engine.load_training_slot(tmp_path / "sampler", with_optimizer=True)
    msg = str(err.value)
    assert "optimizer" in msg and "save_state" in msg and str(tmp_path / "sampler") in msg
    assert set(engine.model.peft_config) == slots_before  # no half-made slot left behind
    # Weights alone load fine from the same folder.
    loaded = engine.load_training_slot(tmp_path / "sampler", with_optimizer=False)
    torch.testing.assert_close(
        _logprobs(engine, loaded), _logprobs(engine, slot), atol=1e-6, rtol=0
    )


def test_load_training_slot_from_a_plain_peft_folder(engine: Engine, tmp_path: Path) -> None:
    """Without evaltune_checkpoint.json the adapter's own PEFT config decides the targets."""
    spec = LoraSpec(rank=2, train_mlp=False, train_unembed=False, seed=0)
    slot = engine.create_training_slot(spec)
    _step(engine, slot)
    _step(engine, slot)
    engine.save_state(slot, tmp_path / "state")
    (tmp_path / "state" / engine_mod.STATE_META).unlink()

    loaded = engine.load_training_slot(tmp_path / "state", with_optimizer=True)
    assert engine._train[loaded].spec.rank == 2
    config = engine.model.peft_config
    assert config[loaded].target_modules == config[slot].target_modules
    torch.testing.assert_close(
        _logprobs(engine, loaded), _logprobs(engine, slot), atol=1e-6, rtol=0
    )


def test_unknown_and_released_slots(engine: Engine) -> None:
    with pytest.raises(EngineError, match="no training adapter 'nope'"):
        engine.forward("nope", _items(engine), "cross_entropy")
    slot = engine.create_training_slot(LoraSpec(rank=4, seed=0))
    engine.release(slot)
    assert slot not in getattr(engine.model, "peft_config", {})
    with pytest.raises(EngineError, match=f"no training adapter '{slot}'"):
        engine.optim_step(slot, AdamConfig())


def test_releasing_the_last_adapter_keeps_the_engine_usable(engine: Engine) -> None:
    before = _logprobs(engine, None)
    slot = engine.create_training_slot(LoraSpec(rank=4, seed=0))
    engine.release(slot)
    torch.testing.assert_close(_logprobs(engine, None), before, atol=1e-6, rtol=0)
    again = engine.create_training_slot(LoraSpec(rank=4, seed=0))
    _step(engine, again)
