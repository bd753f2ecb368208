"""The Tinker backend: Thinking Machines' service, or ``evaltune serve``, through the official
``tinker`` SDK (pinned: ``tinker==0.38.0``, the version the contract tests run against).

This is a thin layer. ``make_service_client`` finds the API key (never logged), checks that
the base URL answers and accepts the key (``check_reachable``, seconds instead of the SDK's
minutes of retries), and returns the SDK's ``ServiceClient`` in a thin wrapper (its clients
too) that forwards every call unchanged and adds three things the loop needs and the SDK lacks:

- ``list_models()`` / a check on every ``base_model``: an unknown model fails at once, naming
  the ones the server supports, instead of deep inside a request;
- ``model_facts(base_model)``: the model's width for the ``auto`` learning rate, from a small
  table of models Tinker serves, or from the model's own ``config.json`` when it is an evaltune
  alias or a local folder (``evaltune serve`` on this machine). The SDK's capabilities carry
  no width, so other models get ``{}`` and the loop asks for a numeric learning rate;
- tokenizers that load offline: the SDK loads ``AutoTokenizer.from_pretrained(base_model)``,
  which cannot resolve evaltune's aliases (``gemma-3-270m``); training and sampling clients
  here resolve those (and local folders) through evaltune's model resolution instead.

Retries are the SDK's own and are not re-implemented: every HTTP call retries connection
errors, 408/409/429 and 5xx with exponential backoff (10 attempts), request submission keeps
retrying transient failures for up to 5 minutes, and result polling retries until the server
answers. Each failed attempt with a transient cause is counted (``evaltune.faults``) and the
loop reports the count after every phase. An error that outlives the retries is the SDK's own
exception, unchanged (the loop turns it into one line: ``contract.service_failure``).
``timeout`` bounds how long a sampling request may make no progress before it fails (the SDK's
``RetryConfig.progress_timeout``, 2 hours by default).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import httpx
import tinker
from tinker.lib.base_url import resolve_base_url
from tinker.lib.public_interfaces.api_future import AwaitableConcurrentFuture
from tinker.lib.retry_handler import RetryConfig

from evaltune import faults
from evaltune.errors import BackendError

__all__ = [
    "KNOWN_MODELS",
    "SDK_VERSION",
    "ServiceClient",
    "check_reachable",
    "list_models",
    "make_service_client",
    "read_api_key",
]

SDK_VERSION = "0.38.0"
T = TypeVar("T")

# Widths of models Tinker serves (from their published configs), for the `auto` learning rate.
KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "Qwen/Qwen3-4B-Instruct-2507": {"hidden_size": 2560, "num_hidden_layers": 36},
    "Qwen/Qwen3-8B": {"hidden_size": 4096, "num_hidden_layers": 36},
    "Qwen/Qwen3-8B-Base": {"hidden_size": 4096, "num_hidden_layers": 36},
    "Qwen/Qwen3-30B-A3B": {"hidden_size": 2048, "num_hidden_layers": 48},
    "Qwen/Qwen3-30B-A3B-Base": {"hidden_size": 2048, "num_hidden_layers": 48},
    "Qwen/Qwen3-32B": {"hidden_size": 5120, "num_hidden_layers": 64},
    "Qwen/Qwen3-235B-A22B-Instruct-2507": {"hidden_size": 4096, "num_hidden_layers": 94},
    "meta-llama/Llama-3.2-1B": {"hidden_size": 2048, "num_hidden_layers": 16},
    "meta-llama/Llama-3.2-3B": {"hidden_size": 3072, "num_hidden_layers": 28},
    "meta-llama/Llama-3.1-8B": {"hidden_size": 4096, "num_hidden_layers": 32},
    "meta-llama/Llama-3.1-8B-Instruct": {"hidden_size": 4096, "num_hidden_layers": 32},
    "meta-llama/Llama-3.1-70B": {"hidden_size": 8192, "num_hidden_layers": 80},
    "meta-llama/Llama-3.3-70B-Instruct": {"hidden_size": 8192, "num_hidden_layers": 80},
}


def _dotenv(path: Path, name: str) -> str | None:
    """``name``'s value in a ``.env`` file (``KEY=value``, optional ``export`` and quotes)."""
    if not path.is_file():
        return None
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            return value or None
    return None


def read_api_key(env_var: str = "TINKER_API_KEY", cwd: Path | None = None) -> str:
    """The API key from ``env_var``, else from ``.env`` in ``cwd``; never printed."""
    key = os.environ.get(env_var) or _dotenv((cwd or Path.cwd()) / ".env", env_var)
    if not key:
        raise BackendError(
            f"no Tinker API key: set the environment variable {env_var} (export {env_var}=tml-...) "
            f"or add a line {env_var}=tml-... to a .env file in {cwd or Path.cwd()}; for "
            "evaltune serve, use the key it printed at start-up"
        )
    if not key.startswith(("tml-", "eyJ")):
        raise BackendError(
            f"the API key in {env_var} does not look like a Tinker key (it must start with "
            "'tml-'); check that the variable holds the key itself"
        )
    return key


def _then(future: Any, fn: Callable[[Any], T]) -> AwaitableConcurrentFuture[T]:
    """An awaitable future of ``fn(result)`` for an SDK future."""
    out: Future[T] = Future()

    def done(f: Future[Any]) -> None:
        try:
            out.set_result(fn(f.result()))
        except BaseException as exc:
            out.set_exception(exc)

    future.future().add_done_callback(done)
    return AwaitableConcurrentFuture(out)


@functools.lru_cache(maxsize=8)
def local_tokenizer(model_name: str | None, tokenizer_id: str | None = None) -> Any | None:
    """The tokenizer of an evaltune alias or a local folder, loaded offline; ``None`` for
    anything else (a hub id), which the SDK's own ``get_tokenizer`` then loads."""
    from evaltune.engine.models import BUILTIN_MODELS, load_tokenizer, resolve_model

    for name in (tokenizer_id, model_name):
        if name and (name in BUILTIN_MODELS or (Path(name) / "config.json").is_file()):
            return load_tokenizer(resolve_model(name).path)
    return None


class _Client:
    """An SDK client whose ``get_tokenizer`` resolves evaltune's names; the rest forwards."""

    def __init__(self, sdk: Any) -> None:
        self._sdk = sdk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sdk, name)


class SamplingClient(_Client):
    # The contract's methods are spelled out (not only forwarded by ``__getattr__``), so
    # ``isinstance(client, contract.SamplingClient)`` holds on Python 3.12+, whose runtime
    # Protocol checks do not call ``__getattr__``.
    def sample(self, *args: Any, **kwargs: Any):
        return self._sdk.sample(*args, **kwargs)

    def compute_logprobs(self, *args: Any, **kwargs: Any):
        return self._sdk.compute_logprobs(*args, **kwargs)

    def get_tokenizer(self) -> Any:
        return local_tokenizer(self._sdk.get_base_model()) or self._sdk.get_tokenizer()


class TrainingClient(_Client):
    def forward(self, *args: Any, **kwargs: Any):
        return self._sdk.forward(*args, **kwargs)

    def forward_backward(self, *args: Any, **kwargs: Any):
        return self._sdk.forward_backward(*args, **kwargs)

    def optim_step(self, *args: Any, **kwargs: Any):
        return self._sdk.optim_step(*args, **kwargs)

    def save_state(self, *args: Any, **kwargs: Any):
        return self._sdk.save_state(*args, **kwargs)

    def save_weights_for_sampler(self, *args: Any, **kwargs: Any):
        return self._sdk.save_weights_for_sampler(*args, **kwargs)

    def get_tokenizer(self) -> Any:
        data = self._sdk.get_info().model_data
        return local_tokenizer(data.model_name, data.tokenizer_id) or self._sdk.get_tokenizer()

    def save_weights_and_get_sampling_client(self, *args: Any, **kwargs: Any):
        return _then(
            self._sdk.save_weights_and_get_sampling_client(*args, **kwargs), SamplingClient
        )

    def create_sampling_client(self, *args: Any, **kwargs: Any):
        return _then(self._sdk.create_sampling_client(*args, **kwargs), SamplingClient)


class ServiceClient(_Client):
    """``tinker.ServiceClient`` with ``list_models``, ``model_facts`` and offline tokenizers."""

    def __init__(self, sdk: tinker.ServiceClient, rest: Callable[[], Any], retry: RetryConfig):
        super().__init__(sdk)
        self._rest = rest
        self._retry = retry
        self._models: list[str] | None = None

    def list_models(self) -> list[str]:
        if self._models is None:
            caps = self._rest().get_server_capabilities().result()
            self._models = [m.model_name for m in caps.supported_models if m.model_name]
        return self._models

    def check_model(self, base_model: str) -> None:
        models = self.list_models()
        if base_model not in models and not (Path(base_model) / "config.json").is_file():
            raise BackendError(
                f"unknown base model {base_model!r}; this Tinker server supports: "
                f"{', '.join(models) or '(none)'}"
            )

    def model_facts(self, base_model: str) -> dict[str, Any]:
        if base_model in KNOWN_MODELS:
            return dict(KNOWN_MODELS[base_model])
        from evaltune.engine.models import BUILTIN_MODELS, resolve_model

        if base_model in BUILTIN_MODELS or (Path(base_model) / "config.json").is_file():
            config = Path(resolve_model(base_model).path) / "config.json"
            data = json.loads(config.read_text()) if config.is_file() else {}
            data = data.get("text_config", data)
            keys = ("hidden_size", "num_hidden_layers", "vocab_size", "model_type")
            return {k: data.get(k) for k in keys}
        return {}

    def create_lora_training_client(self, base_model: str, *args: Any, **kwargs: Any):
        self.check_model(base_model)
        sdk = self._sdk.create_lora_training_client(base_model, *args, **kwargs)
        return _then(sdk, TrainingClient)

    def create_training_client_from_state(self, *args: Any, **kwargs: Any):
        return _then(self._sdk.create_training_client_from_state(*args, **kwargs), TrainingClient)

    def create_training_client_from_state_with_optimizer(self, *args: Any, **kwargs: Any):
        sdk = self._sdk.create_training_client_from_state_with_optimizer(*args, **kwargs)
        return _then(sdk, TrainingClient)

    def create_sampling_client(
        self, model_path: str | None = None, base_model: str | None = None, **kwargs: Any
    ):
        if model_path is None and base_model is not None:
            self.check_model(base_model)
        kwargs.setdefault("retry_config", self._retry)
        sdk = self._sdk.create_sampling_client(
            model_path=model_path, base_model=base_model, **kwargs
        )
        return _then(sdk, SamplingClient)


class _QuietTryAgain(logging.Filter):
    """The SDK logs a warning each time a result poll ends before the work does; that is
    ordinary queueing (a training step longer than one long poll), not something to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "because of try_again" not in record.getMessage()


class _CountRetries(logging.Filter):
    """Counts failed HTTP attempts with a transient cause into ``evaltune.faults``. The SDK
    retries them at several levels (the HTTP client, request submission, result polling), most
    without a log line, but every failed attempt passes through its HTTP client, which logs it
    at DEBUG. So the logger is set to DEBUG and this filter passes on only the records its
    parent's level lets through: nothing new is printed; ``--log-level debug`` shows them all."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger
        self.status = 0

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg if isinstance(record.msg, str) else ""
        if msg.startswith("HTTP Response:") and isinstance(record.args, tuple):
            self.status = int(record.args[2]) if len(record.args) > 2 else 0
        elif msg.startswith("Encountered httpx.HTTPStatusError"):
            # logged right after its "HTTP Response" record, with no await in between
            if self.status in (408, 409, 429) or self.status >= 500:
                faults.record("tinker", f"HTTP {self.status}")
        elif msg == "Encountered httpx.TimeoutException":
            faults.record("tinker", "timeout")
        elif msg == "Encountered Exception":
            faults.record("tinker", "connection error")
        parent = self.logger.parent or logging.getLogger()
        return record.levelno >= parent.getEffectiveLevel()


def _quiet_polls() -> None:
    sdk_log = logging.getLogger("tinker.lib.api_future_impl")
    if not any(isinstance(f, _QuietTryAgain) for f in sdk_log.filters):
        sdk_log.addFilter(_QuietTryAgain())
    http_log = logging.getLogger("tinker._base_client")
    if not any(isinstance(f, _CountRetries) for f in http_log.filters):
        http_log.addFilter(_CountRetries(http_log))
        http_log.setLevel(logging.DEBUG)


def make_service_client(
    base_url: str | None = None,
    api_key_env: str = "TINKER_API_KEY",
    *,
    timeout: float | None = None,
    retry_config: RetryConfig | None = None,
) -> ServiceClient:
    """An SDK ``ServiceClient`` for ``base_url`` (None: the SDK's default, Thinking Machines,
    or ``$TINKER_BASE_URL``) with the key from ``api_key_env`` or ``./.env``."""
    key = read_api_key(api_key_env)
    retry = retry_config or RetryConfig()
    if timeout is not None:
        retry = dataclasses.replace(retry, progress_timeout=float(timeout))
    check_reachable(resolve_base_url(base_url), key)
    _quiet_polls()
    sdk = tinker.ServiceClient(base_url=base_url, api_key=key)
    return ServiceClient(sdk, lambda: tinker.RestClient(base_url=base_url, api_key=key), retry)


def check_reachable(base_url: str, api_key: str, timeout: float = 10.0) -> None:
    """Fail in seconds, not after the SDK's minutes of retries, when nothing answers at
    ``base_url`` or the key is refused."""
    try:
        response = httpx.get(
            f"{base_url}/api/v1/healthz", headers={"X-API-Key": api_key}, timeout=timeout
        )
    except httpx.HTTPError as exc:
        raise BackendError(
            f"cannot reach the Tinker service at {base_url}: {type(exc).__name__}: {exc}; check "
            "tinker.base_url (and that evaltune serve is running, if you point at one)"
        ) from None
    if response.status_code in (401, 403):
        raise BackendError(
            f"the Tinker service at {base_url} refused the API key (HTTP {response.status_code}); "
            "check the key's environment variable (tinker.api_key_env)"
        )


def list_models(service: ServiceClient) -> list[str]:
    """The base models the service can train and sample (its ``get_server_capabilities``)."""
    return service.list_models()
