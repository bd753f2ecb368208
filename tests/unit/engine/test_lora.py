"""LoRA adapters: which modules each switch targets, seeded init, adapter files, coexisting slots.

Targets are checked as exact module paths on the tiny Gemma model; adapter files are opened with
safetensors to see exactly what was written; a slot's output is checked against PEFT loading
that adapter alone on a fresh base model.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from evaltune.engine import Engine, LoraSpec, lora
from evaltune.errors import EngineError

ATTN = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
LAYERS = 2


def _base(model_dir: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def base(tiny_model_dir: Path) -> torch.nn.Module:
    return _base(tiny_model_dir)


def _expected(attn: bool, mlp: bool, unembed: bool) -> set[str]:
    names: set[str] = set()
    for i in range(LAYERS):
        if attn:
            names |= {f"model.layers.{i}.self_attn.{m}" for m in ATTN}
        if mlp:
            names |= {f"model.layers.{i}.mlp.{m}" for m in MLP}
    if unembed:
        names.add("lm_head")
    return names


SWITCHES = [c for c in itertools.product([False, True], repeat=3) if any(c)]


@pytest.mark.parametrize(("attn", "mlp", "unembed"), SWITCHES)
def test_target_modules_per_switch(base, attn: bool, mlp: bool, unembed: bool) -> None:
    spec = LoraSpec(rank=4, train_attn=attn, train_mlp=mlp, train_unembed=unembed)
    found = lora.target_modules(base, spec)
    assert len(found) == len(set(found))
    assert set(found) == _expected(attn, mlp, unembed)


@pytest.mark.parametrize(("attn", "mlp", "unembed"), SWITCHES)
def test_adapter_wraps_exactly_the_targets(tiny_model_dir, attn, mlp, unembed) -> None:
    model = _base(tiny_model_dir)
    spec = LoraSpec(rank=4, train_attn=attn, train_mlp=mlp, train_unembed=unembed)
    peft_model = lora.add_adapter(model, "ad", lora.lora_config(model, spec), seed=0)
    wrapped = {
        name.removeprefix("base_model.model.").removesuffix(".lora_A.ad")
        for name, _ in peft_model.named_modules()
        if name.endswith(".lora_A.ad")
    }
    assert wrapped == _expected(attn, mlp, unembed)
    assert peft_model.peft_config["ad"].r == 4
    assert peft_model.peft_config["ad"].lora_alpha == lora.LORA_ALPHA


def test_nothing_targeted_is_an_error(base) -> None:
    spec = LoraSpec(rank=4, train_attn=False, train_mlp=False, train_unembed=False)
    with pytest.raises(EngineError, match="targets nothing") as err:
        lora.lora_config(base, spec)
    assert all(s in str(err.value) for s in ("train_mlp", "train_attn", "train_unembed"))
    with pytest.raises(EngineError, match="no Linear layers match"):
        lora.target_modules(base, spec)


def test_bad_rank_is_an_error(base) -> None:
    with pytest.raises(EngineError, match="rank must be a positive integer; got 0"):
        lora.lora_config(base, LoraSpec(rank=0))


def test_targets_of_a_wrapped_model_are_the_wrappers(tiny_model_dir) -> None:
    """A second adapter targets the same module paths, not ``base_layer`` or LoRA factors."""
    model = _base(tiny_model_dir)
    peft_model = lora.add_adapter(model, "ad", lora.lora_config(model, LoraSpec(rank=4)), seed=0)
    again = lora.target_modules(peft_model.get_base_model(), LoraSpec(rank=8))
    assert set(again) == _expected(True, True, True)


# -- seeded init ------------------------------------------------------------------------------
def _lora_a(model: torch.nn.Module, name: str) -> dict[str, torch.Tensor]:
    marker = f".lora_A.{name}."
    return {
        n.replace(marker, ".lora_A.*."): p.detach().clone()
        for n, p in model.named_parameters()
        if marker in n
    }


def _fresh_adapter(model_dir: Path, seed: int | None) -> dict[str, torch.Tensor]:
    model = _base(model_dir)
    peft_model = lora.add_adapter(model, "ad", lora.lora_config(model, LoraSpec(rank=4)), seed)
    return _lora_a(peft_model, "ad")


def test_seeded_adapter_is_reproducible(tiny_model_dir) -> None:
    first = _fresh_adapter(tiny_model_dir, seed=3)
    again = _fresh_adapter(tiny_model_dir, seed=3)
    other = _fresh_adapter(tiny_model_dir, seed=4)
    assert first.keys() == again.keys() == other.keys() and len(first) == 7 * LAYERS + 1
    for name, value in first.items():
        assert value.abs().max() > 0, name
        torch.testing.assert_close(value, again[name], rtol=0, atol=0)
        assert not torch.equal(value, other[name]), name


def test_seeded_slots_on_one_engine_match(tiny_model_dir) -> None:
    engine = Engine(str(tiny_model_dir))
    a = engine.create_training_slot(LoraSpec(rank=4, seed=9))
    b = engine.create_training_slot(LoraSpec(rank=4, seed=9))
    c = engine.create_training_slot(LoraSpec(rank=4, seed=10))
    got_a, got_b, got_c = (_lora_a(engine.model, s) for s in (a, b, c))
    for name, value in got_a.items():
        assert torch.equal(value, got_b[name]), name
        assert not torch.equal(value, got_c[name]), name


@pytest.mark.parametrize("seed", [5, None])
def test_adapter_init_leaves_global_rng_alone(tiny_model_dir, seed: int | None) -> None:
    model = _base(tiny_model_dir)
    config = lora.lora_config(model, LoraSpec(rank=4))
    torch.manual_seed(1234)
    expected = torch.rand(8)
    torch.manual_seed(1234)
    lora.add_adapter(model, "ad", config, seed=seed)
    assert torch.equal(torch.rand(8), expected)


def test_unseeded_adapters_differ(tiny_model_dir) -> None:
    first = _fresh_adapter(tiny_model_dir, seed=None)
    second = _fresh_adapter(tiny_model_dir, seed=None)
    assert any(not torch.equal(v, second[k]) for k, v in first.items())


def test_adapter_weights_are_fp32_and_b_starts_at_zero(tiny_model_dir) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    peft_model = lora.add_adapter(model, "ad", lora.lora_config(model, LoraSpec(rank=4)), seed=0)
    params = lora.adapter_parameters(peft_model, "ad")
    assert list(params) == sorted(params) and len(params) == 2 * (7 * LAYERS + 1)
    assert all(p.dtype == torch.float32 for p in params.values())
    assert all(not p.any() for n, p in params.items() if "lora_B" in n)


# -- adapter files ----------------------------------------------------------------------------
def test_adapter_file_holds_only_lora_tensors(tiny_model_dir, tmp_path: Path) -> None:
    model = _base(tiny_model_dir)
    assert model.config.tie_word_embeddings  # the case where PEFT would copy the embedding
    spec = LoraSpec(rank=4)
    peft_model = lora.add_adapter(model, "ad", lora.lora_config(model, spec), seed=0)
    lora.save_adapter(peft_model, "ad", tmp_path)

    tensors = load_file(str(tmp_path / lora.ADAPTER_WEIGHTS))
    assert tensors and all("lora_A" in k or "lora_B" in k for k in tensors), sorted(tensors)
    assert not any("embed" in k for k in tensors)
    n_lora = sum(p.numel() for p in lora.adapter_parameters(peft_model, "ad").values())
    assert sum(t.numel() for t in tensors.values()) == n_lora
    embedding_bytes = model.get_input_embeddings().weight.numel() * 4
    size = (tmp_path / lora.ADAPTER_WEIGHTS).stat().st_size
    assert size < n_lora * 4 + 16_384 and size < embedding_bytes
    assert not list(tmp_path.glob("*.tmp"))
    assert lora.read_adapter_config(tmp_path).r == 4


def test_read_adapter_config_rejects_a_non_adapter_folder(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="is not a LoRA checkpoint"):
        lora.read_adapter_config(tmp_path)


def test_loading_into_a_different_shape_is_an_error(tiny_model_dir, tmp_path: Path) -> None:
    model = _base(tiny_model_dir)
    attn_only = LoraSpec(rank=4, train_mlp=False, train_unembed=False)
    peft_model = lora.add_adapter(model, "big", lora.lora_config(model, LoraSpec(rank=4)), 0)
    lora.save_adapter(peft_model, "big", tmp_path)
    peft_model = lora.add_adapter(peft_model, "small", lora.lora_config(peft_model, attn_only), 0)
    with pytest.raises(EngineError, match="does not fit this base model"):
        lora.load_adapter_weights(peft_model, "small", tmp_path)


# -- coexisting adapters ----------------------------------------------------------------------
def _randomise(model: torch.nn.Module, name: str, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in lora.adapter_parameters(model, name).items():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


@pytest.mark.filterwarnings("ignore:.*tie_word_embeddings:UserWarning")
@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")
def test_two_adapters_with_different_shapes_coexist(tiny_model_dir, tmp_path: Path) -> None:
    engine = Engine(str(tiny_model_dir))
    small = engine.create_training_slot(
        LoraSpec(rank=2, train_mlp=False, train_unembed=False, seed=0)
    )
    large = engine.create_training_slot(LoraSpec(rank=8, train_attn=False, seed=1))
    _randomise(engine.model, small, 0)
    _randomise(engine.model, large, 1)

    p_small = lora.adapter_parameters(engine.model, small)
    p_large = lora.adapter_parameters(engine.model, large)
    assert len(p_small) == 2 * 4 * LAYERS and len(p_large) == 2 * (3 * LAYERS + 1)
    assert all(min(p.shape) == 2 for p in p_small.values())
    assert all(min(p.shape) == 8 for p in p_large.values())
    assert all(".self_attn." in n for n in p_small)
    assert all(".self_attn." not in n for n in p_large)

    ids = engine.tokenizer("The quick brown fox jumps over the lazy dog.").input_ids
    ours = {slot: engine.logprobs(slot, [ids])[0] for slot in (small, large, None)}
    for slot in (small, large):
        folder = tmp_path / slot
        engine.save_sampler(slot, folder)
        alone = PeftModel.from_pretrained(_base(tiny_model_dir), str(folder)).eval()
        with torch.no_grad():
            logits = alone(input_ids=torch.tensor([ids])).logits[0, :-1].float()
        theirs = logits.log_softmax(-1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
        torch.testing.assert_close(torch.tensor(ours[slot]), theirs, atol=1e-5, rtol=0)
        # Each adapter really changes the output, and differently from the other.
        assert max(abs(a - b) for a, b in zip(ours[slot], ours[None], strict=True)) > 1e-3
    assert max(abs(a - b) for a, b in zip(ours[small], ours[large], strict=True)) > 1e-3
