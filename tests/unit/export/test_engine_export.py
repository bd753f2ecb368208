"""The torch side of export (``evaltune.engine.export``) on in-process tiny models: the merge
keeps tied input embeddings intact, GGUF round-trips through transformers' own reader (Gemma's
+1 norms, Llama's rotary permutation), and the vLLM variant drops exactly the lm_head LoRA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from evaltune.engine import export as ex
from evaltune.engine.lora import LoraSpec, add_adapter, lora_config, save_adapter
from evaltune.errors import EngineError
from tiny import build_model

IDS = torch.tensor([[2, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 11, 12]])


def _adapted(model: torch.nn.Module, spec: LoraSpec = LoraSpec(rank=4)):  # noqa: B008
    peft_model = add_adapter(model, "default", lora_config(model, spec), seed=0)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # a trained-looking adapter: B starts at zero
    return peft_model


def _gemma(layer_types: list[str] | None = None) -> torch.nn.Module:
    model = build_model(600)
    if layer_types:
        model.config.layer_types = layer_types
    return model


def test_merge_unties_lm_head_and_keeps_input_embeddings() -> None:
    model = _gemma()
    embeddings = model.model.embed_tokens.weight.detach().clone()
    peft_model = _adapted(model)
    with torch.no_grad():
        reference = peft_model(input_ids=IDS).logits
    merged, untied = ex.merge_adapter(peft_model)
    assert untied and merged.config.tie_word_embeddings is False
    assert torch.equal(merged.model.embed_tokens.weight, embeddings)
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=IDS).logits, reference, atol=1e-4, rtol=0)


def test_merge_without_lm_head_lora_keeps_the_tie() -> None:
    merged, untied = ex.merge_adapter(_adapted(_gemma(), LoraSpec(rank=4, train_unembed=False)))
    assert not untied and merged.lm_head.weight is merged.model.embed_tokens.weight


def _round_trip(model: torch.nn.Module, tmp_path: Path, kind: str) -> torch.nn.Module:
    ex.write_gguf(model, tmp_path / f"m-{kind}.gguf", kind, "{{ messages }}")
    return ex.load_gguf(tmp_path, f"m-{kind}.gguf")


def test_gemma_gguf_round_trips_through_transformers(tmp_path: Path) -> None:
    merged, _ = ex.merge_adapter(_adapted(_gemma(["sliding_attention"] * 2)))
    merged.config.final_logit_softcapping = None  # GGUF carries no softcap (monotonic anyway)
    with torch.no_grad():
        reference = merged(input_ids=IDS).logits
        f32 = _round_trip(merged, tmp_path, "f32")
        torch.testing.assert_close(f32(input_ids=IDS).logits, reference, atol=1e-5, rtol=0)
        assert f32.config.tie_word_embeddings is False  # output.weight written, read back
        for kind in ("f16", "q8_0"):
            got = _round_trip(merged, tmp_path, kind)(input_ids=IDS).logits
            assert (got.argmax(-1) == reference.argmax(-1)).float().mean() >= 0.9


def test_llama_gguf_round_trips_with_the_rotary_permutation(tmp_path: Path) -> None:
    config = LlamaConfig(
        vocab_size=600,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        reference = model(input_ids=IDS).logits
        got = _round_trip(model, tmp_path, "f32")(input_ids=IDS).logits
    torch.testing.assert_close(got, reference, atol=1e-5, rtol=0)


def test_unknown_architecture_names_the_way_out(tmp_path: Path) -> None:
    model = _gemma()
    model.config.model_type = "mamba"
    with pytest.raises(EngineError, match="export --format merged"):
        ex.write_gguf(model, tmp_path / "m.gguf", "f16", "")


def test_caveats_name_what_gguf_cannot_carry() -> None:
    notes = " ".join(ex.gguf_caveats(_gemma().config))  # tiny: softcap, layer 2 global
    assert "final_logit_softcapping" in notes and "layer_types" in notes


def test_vllm_variant_drops_only_the_lm_head_lora(tmp_path: Path) -> None:
    model = _gemma()
    peft_model = _adapted(model)
    save_adapter(peft_model, "default", tmp_path / "a")
    base = peft_model.unload()
    modules = ex.strip_lm_head(tmp_path / "a", tmp_path / "v", base)
    assert "lm_head" in ex.lora_modules(tmp_path / "a")
    assert "lm_head" not in modules and ex.lora_modules(tmp_path / "v") == modules
    assert not [
        k for k in load_file(str(tmp_path / "v" / "adapter_model.safetensors")) if "lm_head" in k
    ]
    config = json.loads((tmp_path / "v" / "adapter_config.json").read_text())
    assert config["target_modules"] == sorted(
        {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    )
    loaded = ex.load_adapted(base, tmp_path / "v")  # the list form selects the same modules
    adapted = {n for n, m in loaded.get_base_model().named_modules() if hasattr(m, "lora_A")}
    assert adapted == set(modules)
