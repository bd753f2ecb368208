"""Tinker's client API on the in-process engine: ``ServiceClient``, ``TrainingClient``,
``SamplingClient``.

Drop-in for ``tinker.ServiceClient``: the same method names, arguments and ``tinker.types``
in and out, and every call returns a real ``tinker`` ``APIFuture`` (``.result()`` or ``await``).
Work runs on the engine's single worker thread, so calls on a client execute in the order they
were made, and a caller can queue ``forward_backward`` and ``optim_step`` before waiting, as with
the SDK. There is no HTTP on this path.

What is this module's own: the SDK's method signatures and in-process futures. Every
``tinker.types`` ↔ engine conversion, ``get_info``, the ``load_state`` swap and the checkpoint
store (``tinker://`` paths ↔ folders under ``checkpoint_dir``, default
``$EVALTUNE_HOME/checkpoints``; names and the overwrite rule) are ``evaltune.bridge``'s, shared
with ``evaltune serve``. Anywhere a path is taken, a plain folder path works too (the server,
reached over the network, takes none); ``checkpoint_folder(path)`` maps either to its folder.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Generic, TypeVar

import platformdirs
from tinker import types
from tinker.lib.public_interfaces.api_future import AwaitableConcurrentFuture

from evaltune.bridge import (
    URI_PREFIX,
    CheckpointError,
    CheckpointNotFound,
    CheckpointRef,
    CheckpointStore,
    adam_config,
    check_optimizer,
    forward_items,
    forward_output,
    input_tokens,
    prompt_logprobs,
    replace_slot,
    sample_response,
    sample_spec,
    training_info,
)
from evaltune.engine import Engine, LoraSpec, checkpoint_spec, get_engine, read_checkpoint_meta
from evaltune.engine.models import BUILTIN_MODELS, resolve_model
from evaltune.errors import BackendError

__all__ = [
    "SamplingClient",
    "ServiceClient",
    "TrainingClient",
    "checkpoint_folder",
    "default_checkpoint_dir",
    "run_checkpoint_dir",
]

T = TypeVar("T")


def default_checkpoint_dir() -> Path:
    home = os.environ.get("EVALTUNE_HOME") or platformdirs.user_data_dir("evaltune")
    return Path(home) / "checkpoints"


def checkpoint_folder(path: str, checkpoint_dir: Path | None = None) -> Path:
    """The folder behind a ``tinker://`` checkpoint path (the store's rule, under
    ``checkpoint_dir``), or a plain folder path as it is."""
    if path.startswith(URI_PREFIX):
        return CheckpointStore(checkpoint_dir or default_checkpoint_dir()).folder(path)
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise CheckpointNotFound(f"checkpoint {path!r} not found (looked in {folder})")
    return folder


def run_checkpoint_dir(path: str, workspace: Path | None = None) -> Path | None:
    """For a ``tinker://<model_id>/...`` path from a run's report: that run's checkpoint folder
    under ``<workspace>/runs`` (default: the current directory), else None (use the default)."""
    try:
        model_id = CheckpointRef.parse(path).model_id
    except CheckpointError:
        return None  # a plain folder, or a malformed path that checkpoint_folder will explain
    base = workspace or Path.cwd()
    for folder in sorted(base.glob(f"runs/*/checkpoints/{model_id}")):
        return folder.parent
    return None


class _ClientFuture(AwaitableConcurrentFuture[T], Generic[T]):
    """A finished future of a client that also answers the client's methods, as the SDK's
    back-compat futures do, so both ``create_...().result()`` and the older style work."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result(), name)


def _client_future(client: T) -> _ClientFuture[T]:
    fut: Future[T] = Future()
    fut.set_result(client)
    return _ClientFuture(fut)


def _then(future: Future[T], fn: Callable[[T], Any]) -> Future[Any]:
    """A future of ``fn(result)``, settled when ``future`` is."""
    out: Future[Any] = Future()

    def done(f: Future[T]) -> None:
        try:
            out.set_result(fn(f.result()))
        except BaseException as exc:
            out.set_exception(exc)

    future.add_done_callback(done)
    return out


class ServiceClient:
    """Entry point, as ``tinker.ServiceClient``; ``device``, ``dtype`` and ``checkpoint_dir``
    are the local engine's own options. Keyword arguments the SDK takes for the network
    (``api_key``, ``base_url``, ...) are accepted and ignored."""

    def __init__(
        self,
        *,
        checkpoint_dir: str | Path | None = None,
        device: str | None = None,
        dtype: str | None = None,
        progress: Callable[[str], None] | None = None,
        **_sdk_options: Any,
    ) -> None:
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else default_checkpoint_dir()
        self.checkpoints = CheckpointStore(self.checkpoint_dir)
        self.device = device
        self.dtype = dtype
        self.progress = progress

    def _engine(self, base_model: str) -> Engine:
        return get_engine(base_model, self.device, self.dtype, progress=self.progress)

    def model_facts(self, base_model: str) -> dict[str, Any]:
        """Size facts of a base model from its config (no weights loaded): widths, layer and
        head counts, vocabulary; used for the ``auto`` LR and the LoRA capacity check."""
        config = Path(resolve_model(base_model, progress=self.progress).path) / "config.json"
        data = json.loads(config.read_text()) if config.is_file() else {}
        data = data.get("text_config", data)
        keys = (
            "hidden_size",
            "num_hidden_layers",
            "vocab_size",
            "model_type",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "intermediate_size",
        )
        return {k: data.get(k) for k in keys}

    def get_server_capabilities(self) -> types.GetServerCapabilitiesResponse:
        models = [types.SupportedModel(model_name=name) for name in BUILTIN_MODELS]
        return types.GetServerCapabilitiesResponse(supported_models=models)

    def create_lora_training_client(
        self,
        base_model: str,
        rank: int = 32,
        seed: int | None = None,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
        user_metadata: dict[str, str] | None = None,
        optimizer: Any = None,
    ) -> _ClientFuture[TrainingClient]:
        check_optimizer(optimizer)
        engine = self._engine(base_model)
        spec = LoraSpec(rank, train_mlp, train_attn, train_unembed, seed)
        slot = engine.submit(engine.create_training_slot, spec).result()
        return _client_future(TrainingClient(self, engine, slot, spec))

    def _from_state(self, path: str, with_optimizer: bool) -> _ClientFuture[TrainingClient]:
        folder = checkpoint_folder(path, self.checkpoint_dir)
        meta = read_checkpoint_meta(folder) or {}
        base_model = meta.get("base_model")
        if not base_model:
            raise BackendError(f"{folder} has no evaltune_checkpoint.json naming its base model")
        engine = self._engine(base_model)
        slot = engine.submit(engine.load_training_slot, folder, with_optimizer).result()
        return _client_future(TrainingClient(self, engine, slot, checkpoint_spec(folder)))

    def create_training_client_from_state(
        self, path: str, user_metadata: dict[str, str] | None = None
    ) -> _ClientFuture[TrainingClient]:
        """Weights from a ``save_state`` checkpoint; the optimizer starts fresh."""
        return self._from_state(path, with_optimizer=False)

    def create_training_client_from_state_with_optimizer(
        self, path: str, user_metadata: dict[str, str] | None = None
    ) -> _ClientFuture[TrainingClient]:
        """Weights and AdamW state: training continues exactly where it stopped."""
        return self._from_state(path, with_optimizer=True)

    def create_sampling_client(
        self, model_path: str | None = None, base_model: str | None = None, **_sdk_options: Any
    ) -> _ClientFuture[SamplingClient]:
        if model_path is None and base_model is None:
            raise BackendError("create_sampling_client needs model_path or base_model")
        folder = None
        if model_path is not None:
            folder = checkpoint_folder(model_path, self.checkpoint_dir)
            meta = read_checkpoint_meta(folder) or {}
            base_model = meta.get("base_model") or base_model
            if base_model is None:
                raise BackendError(
                    f"{folder} does not name its base model; pass base_model= as well"
                )
        assert base_model is not None
        client = SamplingClient(self._engine(base_model), folder, model_path)
        return _client_future(client)


class TrainingClient:
    """A LoRA adapter being trained; methods as ``tinker.TrainingClient``."""

    def __init__(self, service: ServiceClient, engine: Engine, slot: str, spec: LoraSpec):
        self._service = service
        self._engine = engine
        self._slot = slot
        self._spec = spec
        self.model_id = f"local-{uuid.uuid4().hex[:12]}"
        self._snapshots = itertools.count()

    def _submit(self, fn: Callable[..., T], *args: Any) -> AwaitableConcurrentFuture[T]:
        return AwaitableConcurrentFuture(self._engine.submit(fn, *args))

    def _fwd(
        self,
        data: Sequence[types.Datum],
        loss_fn: str,
        config: Mapping[str, Any] | None,
        backward: bool,
    ) -> AwaitableConcurrentFuture[types.ForwardBackwardOutput]:
        items = forward_items(data)
        cfg = {k: float(v) for k, v in (config or {}).items()}

        def run() -> types.ForwardBackwardOutput:
            return forward_output(self._engine.forward(self._slot, items, loss_fn, cfg, backward))

        return self._submit(run)

    def forward(
        self,
        data: Sequence[types.Datum],
        loss_fn: str = "cross_entropy",
        loss_fn_config: Mapping[str, Any] | None = None,
    ):
        """Loss and per-token logprobs without gradients."""
        return self._fwd(data, loss_fn, loss_fn_config, backward=False)

    def forward_backward(
        self,
        data: Sequence[types.Datum],
        loss_fn: str = "cross_entropy",
        loss_fn_config: Mapping[str, Any] | None = None,
    ):
        """Loss and logprobs; gradients accumulate until the next ``optim_step``."""
        return self._fwd(data, loss_fn, loss_fn_config, backward=True)

    def optim_step(
        self,
        optim_params: types.AdamParams | None = None,
        *,
        adam_params: types.AdamParams | None = None,
    ):
        adam = adam_config(optim_params or adam_params or types.AdamParams())

        def run() -> types.OptimStepResponse:
            return types.OptimStepResponse(metrics=self._engine.optim_step(self._slot, adam))

        return self._submit(run)

    def _folder(self, kind: str, name: str, overwrite: bool) -> tuple[Path, str]:
        return self._service.checkpoints.new_folder(self.model_id, kind, name, overwrite)

    def save_state(
        self,
        name: str,
        ttl_seconds: int | None = None,
        overwrite: bool = False,
        user_metadata: dict[str, str] | None = None,
    ):
        """Adapter weights + optimizer state under ``tinker://<model_id>/weights/<name>``."""
        folder, uri = self._folder("weights", name, overwrite)

        def run() -> types.SaveWeightsResponse:
            self._engine.save_state(self._slot, folder)
            return types.SaveWeightsResponse(path=uri)

        return self._submit(run)

    def save_weights_for_sampler(
        self, name: str, ttl_seconds: int | None = None, user_metadata: dict[str, str] | None = None
    ):
        """Adapter weights under ``tinker://<model_id>/sampler_weights/<name>``."""
        folder, uri = self._folder("sampler_weights", name, overwrite=True)

        def run() -> types.SaveWeightsForSamplerResponse:
            self._engine.save_sampler(self._slot, folder)
            return types.SaveWeightsForSamplerResponse(path=uri)

        return self._submit(run)

    def save_weights_and_get_sampling_client(self, name: str | None = None, **_sdk_options: Any):
        """Snapshot the current weights and return a SamplingClient on the snapshot."""
        snap = name or f"snapshot-{next(self._snapshots):04d}"
        saved = self.save_weights_for_sampler(snap)

        def run() -> SamplingClient:
            path = saved.result().path
            folder = checkpoint_folder(path, self._service.checkpoint_dir)
            return SamplingClient(self._engine, folder, path)

        return _ClientFuture(self._engine.submit(run))

    def create_sampling_client(self, model_path: str, **_sdk_options: Any):
        return self._service.create_sampling_client(model_path=model_path)

    def load_state(self, path: str):
        """Replace this adapter's weights with a checkpoint's; the optimizer starts fresh."""
        return self._load(path, with_optimizer=False)

    def load_state_with_optimizer(self, path: str):
        """Replace this adapter's weights and AdamW state with a ``save_state`` checkpoint's."""
        return self._load(path, with_optimizer=True)

    def _load(self, path: str, with_optimizer: bool):
        folder = checkpoint_folder(path, self._service.checkpoint_dir)

        def run() -> types.LoadWeightsResponse:
            self._slot = replace_slot(self._engine, self._slot, folder, with_optimizer)
            return types.LoadWeightsResponse(path=path)

        return self._submit(run)

    def get_tokenizer(self):
        return self._engine.tokenizer

    def get_info(self) -> types.GetInfoResponse:
        return training_info(self._engine, self.model_id, self._spec, self._engine.base_model)

    # Deprecated SDK spellings, kept so older recipes run unchanged.
    async def forward_async(self, *a: Any, **kw: Any):
        return self.forward(*a, **kw)

    async def forward_backward_async(self, *a: Any, **kw: Any):
        return self.forward_backward(*a, **kw)

    async def optim_step_async(self, *a: Any, **kw: Any):
        return self.optim_step(*a, **kw)

    async def save_state_async(self, *a: Any, **kw: Any):
        return self.save_state(*a, **kw)

    async def save_weights_for_sampler_async(self, *a: Any, **kw: Any):
        return self.save_weights_for_sampler(*a, **kw)


class SamplingClient:
    """Samples from the base model (``folder is None``) or a saved adapter."""

    def __init__(self, engine: Engine, folder: Path | None, model_path: str | None = None):
        self._engine = engine
        self._folder = folder
        self.model_path = model_path

    def _slot(self) -> str | None:
        return None if self._folder is None else self._engine.sampler_slot(self._folder)

    def sample(
        self,
        prompt: types.ModelInput,
        num_samples: int,
        sampling_params: types.SamplingParams,
        include_prompt_logprobs: bool = False,
        topk_prompt_logprobs: int = 0,
        topk_sample_logprobs: int = 0,
        **_unsupported: Any,
    ):
        if topk_prompt_logprobs or topk_sample_logprobs:
            raise BackendError("top-k logprobs are not supported by the local engine")
        spec = sample_spec(input_tokens(prompt, "prompt"), num_samples, sampling_params)
        # Concurrent sample() calls coalesce into one batched decode (see engine.batcher).
        pending = self._engine.batcher.submit(self._folder, spec, include_prompt_logprobs)
        return AwaitableConcurrentFuture(_then(pending, sample_response))

    def compute_logprobs(self, prompt: types.ModelInput, prompt_logprobs_last_n: int | None = None):
        """Logprob of each prompt token given its prefix; ``None`` for the first token."""
        tokens = input_tokens(prompt, "prompt")

        def run() -> list[float | None]:
            scored = self._engine.logprobs(self._slot(), [tokens])[0]
            return prompt_logprobs(scored, prompt_logprobs_last_n)

        return AwaitableConcurrentFuture(self._engine.submit(run))

    def get_tokenizer(self):
        return self._engine.tokenizer

    def get_base_model(self) -> str:
        return self._engine.base_model

    async def sample_async(self, *a: Any, **kw: Any) -> types.SampleResponse:
        return await self.sample(*a, **kw)

    async def compute_logprobs_async(self, *a: Any, **kw: Any) -> list[float | None]:
        return await self.compute_logprobs(*a, **kw)
