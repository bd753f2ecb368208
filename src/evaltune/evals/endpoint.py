"""Evaluate any OpenAI-compatible endpoint (vLLM, Ollama, OpenAI, ``evaltune serve``) on a suite.

``evaluate_endpoint`` asks every example of a ``GeneratedSuite`` through ``POST {base_url}/chat/
completions`` (the server applies its own chat template) or ``/completions`` (a ``User: …
Assistant:`` text prompt, for base models), grades the replies with the suite's grader and
returns the same ``EvalResult`` a SamplingClient evaluation gives, so ``evaltune compare`` can
put an endpoint next to a local checkpoint.

Requests go through ``httpx`` with a timeout, ``concurrency`` at a time. The first example is
asked alone, so a wrong URL, key or model name fails at once with one clear message instead of
once per example; connection errors, 429 and 5xx are retried with backoff (``Retry-After`` is
honoured, up to 30 s). Errors name the URL and the fix: connection refused, 401/403 (which
environment variable the key came from), 404 (the endpoint's models, when it lists them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from evaltune import faults
from evaltune.data.example import Message
from evaltune.errors import ConfigError, EvalError
from evaltune.evals.generation import grade_responses
from evaltune.evals.result import EvalResult
from evaltune.evals.suites import GeneratedSuite

__all__ = [
    "APIS",
    "EndpointClient",
    "EndpointReply",
    "evaluate_endpoint",
    "normalize_base_url",
]

APIS = ("chat", "completions")
_RETRY_STATUS = (429, 500, 502, 503, 504)
_ROUTES = ("/chat/completions", "/completions")
_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


@dataclass(frozen=True)
class EndpointReply:
    text: str
    stop_reason: str  # "stop" | "length" (OpenAI's finish_reason "length")
    num_tokens: int  # usage.completion_tokens, 0 when the server does not report it


def normalize_base_url(url: str) -> str:
    """``url`` as a base URL ending in the API prefix: a pasted ``…/chat/completions`` route is
    cut off, and a bare ``http://host:port`` gets ``/v1`` (vLLM, Ollama, ``evaltune serve``)."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"endpoint {url!r} is not an http(s) URL; give e.g. http://127.0.0.1:8000/v1"
        )
    for route in _ROUTES:
        if url.endswith(route):
            return url[: -len(route)]
    return url if parts.path.strip("/") else url + "/v1"


def completion_prompt(messages: Sequence[Message]) -> str:
    """A conversation as ``System: …\\n\\nUser: …\\n\\nAssistant:`` text (the ``role_colon``
    layout) for a ``/completions`` endpoint serving a base model."""
    turns = [f"{_LABELS.get(m.role, m.role.title())}: {m.content}" for m in messages]
    return "\n\n".join([*turns, "Assistant:"])


@dataclass
class EndpointClient:
    """One model on an OpenAI-compatible server. ``client`` lets tests pass an in-process
    transport; ``key_source`` names where the key came from, for error messages."""

    base_url: str
    model: str
    api_key: str | None = None
    api: str = "chat"
    timeout: float = 120.0
    retries: int = 2
    concurrency: int = 16
    key_source: str = "the API key"
    client: httpx.Client | None = None
    _owned: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise ConfigError(f"api {self.api!r}; choose one of: {', '.join(APIS)}")
        self.base_url = normalize_base_url(self.base_url)
        if self.client is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self.client = httpx.Client(headers=headers, timeout=self.timeout)
            self._owned = True

    @property
    def url(self) -> str:
        return self.base_url + ("/chat/completions" if self.api == "chat" else "/completions")

    def _body(self, messages: Sequence[Message], params: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, **params}
        if self.api == "chat":
            body["messages"] = [{"role": m.role, "content": m.content} for m in messages]
        else:
            body["prompt"] = completion_prompt(messages)
            body["stop"] = [*body.get("stop", []), "\n\nUser:"]
        return body

    def complete(self, messages: Sequence[Message], params: dict[str, Any]) -> EndpointReply:
        """One reply; ``params`` are the request's sampling fields (max_tokens, temperature,
        seed, stop)."""
        assert self.client is not None
        body = self._body(messages, params)
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.client.post(self.url, json=body)
            except httpx.TimeoutException:
                if not last:
                    faults.record(self.base_url, "timeout")
                    continue
                raise EvalError(
                    f"{self.url} sent no answer within {self.timeout:g} s; raise --timeout, or "
                    "lower --concurrency if the server is overloaded"
                ) from None
            except httpx.HTTPError as exc:
                if not last:
                    faults.record(self.base_url, "connection error")
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise EvalError(
                    f"cannot connect to {self.url}: {exc or type(exc).__name__}; is the server "
                    "running, and are the host, port and scheme in --endpoint right?"
                ) from None
            if response.status_code in _RETRY_STATUS and not last:
                faults.record(self.base_url, f"HTTP {response.status_code}")
                time.sleep(_backoff(response, attempt))
                continue
            return self._reply(response)
        raise AssertionError("unreachable")

    def _reply(self, response: httpx.Response) -> EndpointReply:
        try:
            data: Any = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            raise EvalError(self._http_error(response.status_code, _message(data, response)))
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] if self.api == "chat" else choice["text"]
        except (KeyError, IndexError, TypeError):
            raise EvalError(
                f"{self.url} sent no choices[0] {'message.content' if self.api == 'chat' else 'text'}"
                f": {str(data)[:300]}"
            ) from None
        usage = data.get("usage") or {}
        return EndpointReply(
            text=(text or "").strip(),
            stop_reason="length" if choice.get("finish_reason") == "length" else "stop",
            num_tokens=int(usage.get("completion_tokens") or 0),
        )

    def _http_error(self, status: int, message: str) -> str:
        said = f"{self.url} answered {status}: {message}"
        if status in (401, 403):
            if self.api_key:
                return f"{said}; the key from {self.key_source} was refused: check it"
            return f"{said}; no API key was sent: put it in {self.key_source}"
        if status == 404:
            models = self.list_models()
            if models is not None and self.model not in models:
                shown = ", ".join(models[:20]) or "none"
                return f"{said}; model {self.model!r} is not served there; it serves: {shown}"
            if models is None:
                return f"{said}; is --endpoint the API base (e.g. http://host:8000/v1)?"
        return said

    def list_models(self) -> list[str] | None:
        """The ids ``GET {base_url}/models`` lists, or None when it lists nothing readable."""
        assert self.client is not None
        try:
            response = self.client.get(self.base_url + "/models")
            data = response.json()["data"] if response.status_code == 200 else None
            return [str(m["id"]) for m in data] if isinstance(data, list) else None
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def complete_many(
        self,
        prompts: Sequence[Sequence[Message]],
        params: dict[str, Any],
        progress: Callable[[int, int], None] | None = None,
    ) -> list[EndpointReply]:
        """Replies in order. The first prompt goes alone (a bad URL, key or model fails once,
        clearly), the rest ``concurrency`` at a time; the first error cancels what is left."""
        if not prompts:
            return []
        replies = [self.complete(prompts[0], params)]
        if progress is not None:
            progress(1, len(prompts))
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            futures = [pool.submit(self.complete, p, params) for p in prompts[1:]]
            try:
                for future in futures:
                    replies.append(future.result())
                    if progress is not None:
                        progress(len(replies), len(prompts))
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return replies

    def close(self) -> None:
        if self._owned and self.client is not None:
            self.client.close()


def _message(data: Any, response: httpx.Response) -> str:
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            return str(error.get("message") or error)
        return str(error)
    return response.text[:300] or response.reason_phrase


def _backoff(response: httpx.Response, attempt: int) -> float:
    try:
        return min(30.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return 0.5 * 2**attempt


def evaluate_endpoint(
    suite: GeneratedSuite,
    endpoint: EndpointClient,
    *,
    temperature: float = 0.0,
    seed: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Ask every example of ``suite`` through ``endpoint``, grade the replies, aggregate."""
    if not isinstance(suite, GeneratedSuite):
        raise EvalError(
            f"suite {suite.name!r} is a {suite.kind} suite; an endpoint is evaluated on "
            "generated answers only (NLL needs a SamplingClient: evaltune eval)"
        )
    if not suite.examples:
        raise EvalError(f"suite {suite.name!r} has no examples to evaluate")
    params: dict[str, Any] = {"max_tokens": suite.max_tokens, "temperature": temperature}
    if seed is not None:
        params["seed"] = seed
    prompts = [ex.prompt_messages for ex in suite.examples]
    replies = endpoint.complete_many(prompts, params, progress)
    records = grade_responses(
        suite.examples,
        [r.text for r in replies],
        suite.grader,
        stop_reasons=[r.stop_reason for r in replies],
        num_tokens=[r.num_tokens for r in replies],
    )
    sampling = {
        "max_tokens": suite.max_tokens,
        "temperature": temperature,
        "seed": seed,
        "num_samples": 1,
        "stop": ["\n\nUser:"] if endpoint.api == "completions" else [],
        "endpoint": endpoint.base_url,
        "api": endpoint.api,
    }
    provenance = {**suite.provenance, "endpoint": endpoint.base_url, "model": endpoint.model}
    return EvalResult.from_records(
        suite.name,
        records,
        model_path=endpoint.model,
        sampling=sampling,
        suite_hash=suite.suite_hash,
        provenance=provenance,
    )
