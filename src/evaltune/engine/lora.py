"""LoRA adapters on a resident base model: which modules to target, and the adapter files.

An adapter is a named PEFT slot on the one base model the engine holds. Its files are the
standard PEFT pair (``adapter_model.safetensors`` + ``adapter_config.json``), written with PEFT's
own state-dict helpers, so ``peft.PeftModel.from_pretrained(base, folder)`` loads any checkpoint
the engine writes.

Tinker's three switches map onto module families: ``train_attn`` → the attention projections,
``train_mlp`` → the MLP projections, ``train_unembed`` → ``lm_head``. ``lora_alpha`` is fixed at
32 whatever the rank, as on Tinker, so that a learning rate tuned at one rank transfers to another.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save

from evaltune.errors import EngineError
from evaltune.files import write_bytes_atomic

__all__ = [
    "LORA_ALPHA",
    "LoraSpec",
    "adapter_parameters",
    "add_adapter",
    "load_adapter_weights",
    "lora_config",
    "read_adapter_config",
    "save_adapter",
    "target_modules",
]

LORA_ALPHA = 32
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class LoraSpec:
    """What a LoRA adapter adapts: Tinker's ``LoraConfig`` in plain data."""

    rank: int = 32
    train_mlp: bool = True
    train_attn: bool = True
    train_unembed: bool = True
    seed: int | None = None

    def validate(self) -> None:
        if self.rank < 1:
            raise EngineError(f"LoRA rank must be a positive integer; got {self.rank}")
        if not (self.train_mlp or self.train_attn or self.train_unembed):
            raise EngineError(
                "LoRA adapter targets nothing: set at least one of train_mlp, train_attn, "
                "train_unembed to True"
            )


def target_modules(model: torch.nn.Module, spec: LoraSpec) -> list[str]:
    """Full module paths of the Linear layers the spec adapts, in model order.

    Classification is by the parent block's name (``self_attn``/``attention`` vs ``mlp``/
    ``feed_forward``), which holds for the Llama, Gemma, Qwen and Mistral families.
    """
    found: list[str] = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        parts = name.split(".")
        if any(part.startswith("lora_") for part in parts):
            continue  # a LoRA factor of an adapter already on the model
        if parts[-1] == "base_layer":  # a Linear an earlier adapter wrapped: target the wrapper
            parts = parts[:-1]
            name = ".".join(parts)
        if parts[-1] == "lm_head":
            if spec.train_unembed:
                found.append(name)
            continue
        parents = set(parts[:-1])
        is_attn = bool(parents & {"self_attn", "attention", "attn"})
        is_mlp = bool(parents & {"mlp", "feed_forward", "ffn"})
        if (is_attn and spec.train_attn) or (is_mlp and spec.train_mlp):
            found.append(name)
    if not found:
        raise EngineError(
            f"no Linear layers match the LoRA targets (attn={spec.train_attn}, "
            f"mlp={spec.train_mlp}, unembed={spec.train_unembed}) in "
            f"{type(model).__name__}; the local engine knows attention blocks named self_attn "
            "and MLP blocks named mlp"
        )
    return found


def lora_config(model: torch.nn.Module, spec: LoraSpec) -> LoraConfig:
    """The PEFT config for ``spec`` on ``model`` (validated)."""
    spec.validate()
    if isinstance(model, PeftModel):
        model = model.get_base_model()
    # Exact-path regex: a suffix list would also catch look-alike modules elsewhere.
    paths = target_modules(model, spec)
    pattern = "^(" + "|".join(p.replace(".", r"\.") for p in paths) + ")$"
    return LoraConfig(
        r=spec.rank,
        lora_alpha=LORA_ALPHA,
        lora_dropout=0.0,
        bias="none",
        target_modules=pattern,
        task_type="CAUSAL_LM",
    )


def add_adapter(
    model: torch.nn.Module, name: str, config: LoraConfig, seed: int | None = None
) -> PeftModel:
    """Add slot ``name`` to ``model`` (wrapping it in a PeftModel the first time).

    ``seed`` makes the initialisation reproducible without touching the global RNG.
    """
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    devices = [torch.device(base.device)] if base.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        # LoRA on a tied lm_head adapts the output projection only, which is what Tinker's
        # train_unembed means; PEFT warns that such an adapter is awkward to *merge*, and
        # about its own use of a deprecated transformers property. Neither applies here.
        warnings.filterwarnings("ignore", message=".*tie_word_embeddings.*")
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        if seed is not None:
            torch.manual_seed(seed)
        else:
            torch.seed()
        if isinstance(model, PeftModel):
            model.add_adapter(name, config)
            peft_model = model
        else:
            peft_model = get_peft_model(model, config, adapter_name=name)
    # Adapter weights stay fp32 whatever the base dtype: AdamW on bf16 LoRA weights loses updates.
    for param in adapter_parameters(peft_model, name).values():
        param.data = param.data.float()
    return peft_model


def adapter_parameters(model: PeftModel, name: str) -> dict[str, torch.nn.Parameter]:
    """The slot's parameters by name, in a stable (sorted) order for optimizer state."""
    marker = f".{name}."
    params = {n: p for n, p in model.named_parameters() if marker in n and "lora_" in n}
    return dict(sorted(params.items()))


def save_adapter(model: PeftModel, name: str, folder: Path) -> None:
    """Write slot ``name`` as a PEFT adapter folder (atomic per file)."""
    folder.mkdir(parents=True, exist_ok=True)
    # save_embedding_layers=False: with tied embeddings PEFT would otherwise copy the whole
    # (base, unchanged) embedding matrix into every adapter file, 670 MB for Gemma 3 270M.
    state = get_peft_model_state_dict(model, adapter_name=name, save_embedding_layers=False)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    # Serialised in memory, written with Python's own I/O: a full disk is then an OSError
    # naming the file (safetensors would report it as an opaque SafetensorError).
    write_bytes_atomic(folder / ADAPTER_WEIGHTS, save(tensors, metadata={"format": "pt"}))
    config = model.peft_config[name]
    config.save_pretrained(str(folder))


def read_adapter_config(folder: Path) -> LoraConfig:
    if not (folder / ADAPTER_CONFIG).is_file() or not (folder / ADAPTER_WEIGHTS).is_file():
        raise EngineError(
            f"{folder} is not a LoRA checkpoint: expected {ADAPTER_WEIGHTS} and {ADAPTER_CONFIG} "
            "in it (save one with save_state or save_weights_for_sampler)"
        )
    return LoraConfig.from_pretrained(str(folder))


def load_adapter_weights(model: PeftModel, name: str, folder: Path) -> None:
    """Load a PEFT adapter folder's weights into the existing slot ``name``."""
    state = load_file(str(folder / ADAPTER_WEIGHTS))
    result = set_peft_model_state_dict(model, state, adapter_name=name)
    unexpected = [k for k in result.unexpected_keys if "lora_" in k]
    if unexpected:
        raise EngineError(
            f"checkpoint {folder} does not fit this base model: {len(unexpected)} unexpected "
            f"tensors (first: {unexpected[0]}); was it trained on a different base model?"
        )
