"""The resident model: one base model per process, LoRA adapters as named slots on it.

An ``Engine`` owns the base weights, the tokenizer, every adapter slot and each training slot's
AdamW state. Rounds, evaluations and the baseline switch slots instead of reloading weights.
All work runs on one worker thread (``submit``), so requests touching the model execute one at a
time in the order they were submitted, which is Tinker's ordering guarantee for a training client
and what keeps "which adapter is active" race-free.

Slots are of two kinds: *training* slots (trainable, with an optimizer) and *sampler* slots
(frozen copies loaded from a checkpoint folder, kept in a small LRU so evaluating many
checkpoints does not grow memory without bound).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from peft import LoraConfig, PeftModel
from transformers import AutoModelForCausalLM

from evaltune.engine import lora
from evaltune.engine.batcher import SampleBatcher
from evaltune.engine.forward import (
    ForwardItem,
    ForwardResult,
    TopLogprobs,
    run_forward,
    sequence_logprobs,
    sequence_top_logprobs,
)
from evaltune.engine.models import load_tokenizer, quiet_loading, resolve_model
from evaltune.engine.sampling import Sampled, SampleSpec, sample_batch
from evaltune.errors import EngineError
from evaltune.files import write_bytes_atomic

__all__ = [
    "AdamConfig",
    "Engine",
    "checkpoint_spec",
    "default_device",
    "get_engine",
    "read_checkpoint_meta",
]

T = TypeVar("T")
STATE_META = "evaltune_checkpoint.json"
OPTIMIZER_FILE = "optimizer.pt"
MAX_SAMPLER_SLOTS = 8
DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


@dataclass(frozen=True)
class AdamConfig:
    """One optimizer step's hyperparameters, with Tinker's meaning (torch AdamW semantics)."""

    learning_rate: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-12
    weight_decay: float = 0.0
    grad_clip_norm: float = 0.0  # 0 = no clipping


@dataclass
class _TrainSlot:
    spec: lora.LoraSpec
    optimizer: torch.optim.Optimizer
    params: dict[str, torch.nn.Parameter]
    step: int = 0
    pending_grads: bool = False


@dataclass
class _SamplerCache:
    slots: OrderedDict[tuple[str, float], str] = field(default_factory=OrderedDict)


def default_device() -> torch.device:
    wanted = os.environ.get("EVALTUNE_DEVICE")
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None:
        dtype = os.environ.get("EVALTUNE_DTYPE")
    if dtype is None:
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else torch.float32
    try:
        return DTYPES[dtype]
    except KeyError:
        raise EngineError(f"unknown dtype {dtype!r}; choose one of: fp32, bf16") from None


class Engine:
    """A base model held in memory with any number of LoRA slots on it."""

    def __init__(
        self,
        base_model: str,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.base_model = base_model
        self.device = torch.device(device) if device else default_device()
        self.dtype = _resolve_dtype(dtype, self.device)
        resolved = resolve_model(base_model, progress=progress)
        self.model_path = resolved.path
        self.tokenizer = load_tokenizer(resolved.path)
        with quiet_loading():  # a bar per load is noise; the CLI shows its own
            model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=self.dtype)
        model.to(self.device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.model: torch.nn.Module = model
        self._train: dict[str, _TrainSlot] = {}
        self._samplers = _SamplerCache()
        self._ids = itertools.count()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evaltune-engine")
        self.batcher = SampleBatcher(self)
        gen = getattr(model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None) if gen is not None else None
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self.eos_token_ids = sorted(eos_ids)
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else (self.eos_token_ids or [0])[0]

    # -- scheduling -------------------------------------------------------------------------
    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn`` on the engine's worker thread, after everything submitted before it."""
        return self._worker.submit(fn, *args, **kwargs)

    @property
    def architecture(self) -> str:
        return str(getattr(self.model.config, "model_type", "unknown"))

    # -- slots ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _active(self, slot: str | None, train: bool = False) -> Iterator[torch.nn.Module]:
        model = self.model
        if slot is None:
            if isinstance(model, PeftModel):
                with model.disable_adapter():
                    yield model
            else:
                yield model
            return
        assert isinstance(model, PeftModel)
        model.set_adapter(slot, inference_mode=not train)
        yield model

    def create_training_slot(self, spec: lora.LoraSpec, config: LoraConfig | None = None) -> str:
        """A new trainable adapter (B initialised to zero: it starts as the base model).

        ``config`` (an adapter's own PEFT config) overrides the targets ``spec`` would choose.
        """
        name = f"t{next(self._ids)}"
        config = config or lora.lora_config(self.model, spec)
        self.model = lora.add_adapter(self.model, name, config, seed=spec.seed)
        params = lora.adapter_parameters(self.model, name)
        optimizer = torch.optim.AdamW(
            list(params.values()), lr=0.0, betas=(0.9, 0.95), eps=1e-12, weight_decay=0.0
        )
        self._train[name] = _TrainSlot(spec, optimizer, params)
        self.model.set_adapter(name, inference_mode=True)
        return name

    def _slot(self, name: str) -> _TrainSlot:
        try:
            return self._train[name]
        except KeyError:
            raise EngineError(f"no training adapter {name!r} in this engine") from None

    def release(self, name: str) -> None:
        """Drop a slot and its optimizer state (its checkpoints on disk stay)."""
        self._train.pop(name, None)
        model = self.model
        if not isinstance(model, PeftModel) or name not in model.peft_config:
            return
        if len(model.peft_config) == 1:
            # PEFT cannot live with zero adapters (its active adapter would dangle): take the
            # LoRA layers out and go back to the plain base model.
            self.model = model.unload()
            return
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*was active which is now deleted.*")
            model.delete_adapter(name)

    # -- training ---------------------------------------------------------------------------
    def forward(
        self,
        slot: str,
        items: Sequence[ForwardItem],
        loss_fn: str,
        loss_fn_config: dict[str, float] | None = None,
        backward: bool = False,
    ) -> ForwardResult:
        state = self._slot(slot)
        with self._active(slot, train=backward) as model:
            result = run_forward(model, items, loss_fn, loss_fn_config, backward)
        state.pending_grads |= backward
        return result

    def optim_step(self, slot: str, adam: AdamConfig) -> dict[str, float]:
        state = self._slot(slot)
        params = list(state.params.values())
        max_norm = adam.grad_clip_norm if adam.grad_clip_norm > 0 else float("inf")
        grads = [p for p in params if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(grads, max_norm) if grads else torch.tensor(0.0)
        for group in state.optimizer.param_groups:
            group.update(
                lr=adam.learning_rate,
                betas=(adam.beta1, adam.beta2),
                eps=adam.eps,
                weight_decay=adam.weight_decay,
            )
        state.optimizer.step()
        state.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        state.pending_grads = False
        return {"grad_norm": float(norm), "learning_rate": adam.learning_rate}

    # -- checkpoints ------------------------------------------------------------------------
    def _write_meta(self, folder: Path, kind: str, state: _TrainSlot) -> None:
        meta = {
            "kind": kind,
            "base_model": self.base_model,
            "lora": asdict(state.spec),
            "step": state.step,
        }
        (folder / STATE_META).write_text(json.dumps(meta, indent=2))

    def save_state(self, slot: str, folder: Path) -> None:
        """Adapter weights + optimizer state + step: enough to resume training exactly."""
        state = self._slot(slot)
        lora.save_adapter(self.model, slot, folder)
        buffer = io.BytesIO()
        torch.save(state.optimizer.state_dict(), buffer)
        write_bytes_atomic(folder / OPTIMIZER_FILE, buffer.getvalue())  # see lora.save_adapter
        self._write_meta(folder, "state", state)

    def save_sampler(self, slot: str, folder: Path) -> None:
        """Adapter weights only: what a SamplingClient needs."""
        state = self._slot(slot)
        lora.save_adapter(self.model, slot, folder)
        self._write_meta(folder, "sampler", state)

    def load_training_slot(self, folder: Path, with_optimizer: bool) -> str:
        meta = read_checkpoint_meta(folder)
        config = lora.read_adapter_config(folder)
        spec = checkpoint_spec(folder, config)
        if with_optimizer and not (folder / OPTIMIZER_FILE).is_file():
            raise EngineError(
                f"{folder} has no optimizer state ({OPTIMIZER_FILE}); it was saved with "
                "save_weights_for_sampler. Use create_training_client_from_state (weights only) "
                "or a checkpoint from save_state"
            )
        # The checkpoint's own PEFT config: targets exactly the modules its weights belong to.
        name = self.create_training_slot(spec, config)
        lora.load_adapter_weights(self.model, name, folder)
        state = self._train[name]
        state.step = int(meta.get("step", 0)) if meta else 0
        if with_optimizer:
            saved = torch.load(folder / OPTIMIZER_FILE, map_location=self.device, weights_only=True)
            state.optimizer.load_state_dict(saved)
        return name

    def sampler_slot(self, folder: Path) -> str:
        """The slot holding ``folder``'s adapter, loading it (and evicting the oldest) if needed."""
        weights = folder / lora.ADAPTER_WEIGHTS
        cache = self._samplers.slots
        if weights.is_file():  # a hit costs one stat, no config read (this runs per sample batch)
            key = (str(folder.resolve()), weights.stat().st_mtime)
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        config = lora.read_adapter_config(folder)  # says clearly what a non-checkpoint lacks
        key = (str(folder.resolve()), weights.stat().st_mtime)
        name = f"s{next(self._ids)}"
        self.model = lora.add_adapter(self.model, name, config)
        lora.load_adapter_weights(self.model, name, folder)
        cache[key] = name
        while len(cache) > MAX_SAMPLER_SLOTS:
            _, old = cache.popitem(last=False)
            self.release(old)
        return name

    # -- sampling ---------------------------------------------------------------------------
    def sample(self, slot: str | None, specs: Sequence[SampleSpec]) -> list[list[Sampled]]:
        with self._active(slot) as model:
            return sample_batch(model, self.tokenizer, specs, self.eos_token_ids, self.pad_token_id)

    def logprobs(self, slot: str | None, sequences: Sequence[list[int]]) -> list[list[float]]:
        with self._active(slot) as model:
            return sequence_logprobs(model, sequences)

    def top_logprobs(
        self, slot: str | None, sequences: Sequence[list[int]], k: int
    ) -> list[TopLogprobs]:
        """Each token's logprob given its prefix and the ``k`` likeliest tokens at its position
        (``forward.sequence_top_logprobs``)."""
        with self._active(slot) as model:
            return sequence_top_logprobs(model, sequences, k)


def read_checkpoint_meta(folder: Path) -> dict[str, Any] | None:
    path = folder / STATE_META
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def checkpoint_spec(folder: Path, config: LoraConfig | None = None) -> lora.LoraSpec:
    """The LoRA settings a checkpoint was trained with: from its ``evaltune_checkpoint.json``,
    else (a PEFT adapter saved elsewhere) its adapter config's rank with every target on."""
    meta = read_checkpoint_meta(folder)
    if meta and "lora" in meta:
        return lora.LoraSpec(**meta["lora"])
    config = config or lora.read_adapter_config(folder)
    return lora.LoraSpec(rank=int(config.r))


_ENGINES: dict[tuple[str, str, str], Engine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(
    base_model: str,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    progress: Callable[[str], None] | None = None,
) -> Engine:
    """The process's engine for ``base_model`` (loaded on first use, then shared)."""
    dev = torch.device(device) if device else default_device()
    key = (base_model, str(dev), str(_resolve_dtype(dtype, dev)))
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = Engine(base_model, dev, dtype, progress=progress)
            _ENGINES[key] = engine
        return engine
