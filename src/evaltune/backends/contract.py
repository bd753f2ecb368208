"""The Tinker client contract, as evaltune uses it: runtime-checkable Protocols.

Both backends satisfy these: ``backends/local.py`` (the in-process engine) and
``backends/tinker.py`` (the official SDK, against Thinking Machines' service or
``evaltune serve``). They are the *subset* of ``tinker.ServiceClient``, ``tinker.TrainingClient``
and ``tinker.SamplingClient`` that ``train/``, ``evals/``, ``loop/``, ``inspect/`` and ``cli/``
call, plus ``ServiceClient.model_facts`` (model widths for the ``auto`` learning rate), which
both backends add. Every call returns a future (``result()``), as the SDK's do.

Signatures follow the SDK's (``tinker==0.38.0``), less the options evaltune does not pass;
``loss_fn`` is a ``types.LossFnType`` name (``"cross_entropy"``, ``"importance_sampling"`` …)
and ``optim_params`` a ``types.AdamParams``.

``isinstance(x, ServiceClient)`` checks that the methods exist (what ``runtime_checkable``
can check); the contract test (``tests/integration/test_backend_contract.py``) asserts it on
both backends and checks what the methods compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import tinker
from tinker import types

from evaltune.errors import BackendError

__all__ = ["Future", "SamplingClient", "ServiceClient", "TrainingClient", "service_failure"]

T_co = TypeVar("T_co", covariant=True)


@runtime_checkable
class Future(Protocol[T_co]):
    """A pending result: ``concurrent.futures.Future`` and the SDK's API futures both fit."""

    def result(self, timeout: float | None = None) -> T_co: ...


@runtime_checkable
class SamplingClient(Protocol):
    """Samples from, and scores prompts under, one model (a base model or a checkpoint)."""

    def sample(
        self,
        prompt: types.ModelInput,
        num_samples: int,
        sampling_params: types.SamplingParams,
        include_prompt_logprobs: bool = False,
        topk_prompt_logprobs: int = 0,
    ) -> Future[types.SampleResponse]: ...

    def compute_logprobs(self, prompt: types.ModelInput) -> Future[Sequence[float | None]]: ...

    def get_tokenizer(self) -> Any: ...


@runtime_checkable
class TrainingClient(Protocol):
    """A LoRA adapter being trained: forward (no gradients), forward-backward, Adam steps,
    and the two kinds of checkpoint (full state; sampler weights)."""

    def forward(
        self, data: list[types.Datum], loss_fn: Any, loss_fn_config: Any = None
    ) -> Future[types.ForwardBackwardOutput]: ...

    def forward_backward(
        self, data: list[types.Datum], loss_fn: Any, loss_fn_config: Any = None
    ) -> Future[types.ForwardBackwardOutput]: ...

    def optim_step(self, optim_params: Any = None) -> Future[types.OptimStepResponse]: ...

    def save_state(
        self, name: str, overwrite: bool = False
    ) -> Future[types.SaveWeightsResponse]: ...

    def save_weights_for_sampler(
        self, name: str
    ) -> Future[types.SaveWeightsForSamplerResponse]: ...

    def save_weights_and_get_sampling_client(
        self, name: str | None = None
    ) -> Future[SamplingClient]: ...

    def get_tokenizer(self) -> Any: ...


@runtime_checkable
class ServiceClient(Protocol):
    """Creates training and sampling clients; ``model_facts`` gives a base model's size facts
    (``hidden_size`` …; ``{}`` when unknown)."""

    def model_facts(self, base_model: str) -> dict[str, Any]: ...

    def create_lora_training_client(
        self,
        base_model: str,
        rank: int = 32,
        seed: int | None = None,
        train_mlp: bool = True,
        train_attn: bool = True,
        train_unembed: bool = True,
    ) -> Future[TrainingClient]: ...

    def create_training_client_from_state(self, path: str) -> Future[TrainingClient]: ...

    def create_training_client_from_state_with_optimizer(
        self, path: str
    ) -> Future[TrainingClient]: ...

    def create_sampling_client(
        self, model_path: str | None = None, base_model: str | None = None
    ) -> Future[SamplingClient]: ...


def service_failure(exc: BaseException) -> BackendError | None:
    """What a contract call raised when the service failed it for good, as one line: the SDK's
    exceptions (raised once its own retries are spent, or for an error no retry fixes: a
    refused key, a bad request, failed work); ``None`` for anything else. The local backend
    raises evaltune's own errors instead."""
    if not isinstance(exc, tinker.TinkerError):
        return None
    status = getattr(exc, "status_code", None)
    said = " ".join(str(exc).split()) or type(exc).__name__
    kind = f"HTTP {status}" if status else type(exc).__name__
    return BackendError(f"the Tinker server failed a request ({kind}): {said[:500]}")
