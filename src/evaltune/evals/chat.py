"""Chat backends: conversations in, reply texts out, for a judge (or any caller that needs a model
to answer in text rather than tokens).

- ``EndpointChat``: any OpenAI-compatible server (``POST {base_url}/chat/completions``: vLLM,
  Ollama, OpenAI, ``evaltune serve``) through ``httpx``, the key read from an environment
  variable, requests sent concurrently (``concurrency`` at a time), 429/5xx retried;
- ``SamplerChat``: a SamplingClient (local or Tinker) and a renderer, every conversation
  submitted before any reply is awaited, so the backend batches them.

Both implement ``ChatBackend.complete_many``; failures raise ``EvalError`` naming the backend.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from tinker import types

from evaltune.data.example import Message
from evaltune.data.renderers import Renderer
from evaltune.errors import EvalError
from evaltune.evals.generation import Sampler, sampling_stop

__all__ = ["ChatBackend", "EndpointChat", "SamplerChat", "api_key_from_env"]

Conversation = Sequence[Message]
_RETRY_STATUS = (429, 500, 502, 503, 504)


class ChatBackend(Protocol):
    @property
    def name(self) -> str: ...

    def complete_many(self, conversations: Sequence[Conversation]) -> list[str]: ...


def api_key_from_env(env: str | None, who: str) -> str | None:
    """The key in environment variable ``env`` (None when ``env`` is None); unset is an error."""
    if env is None:
        return None
    key = os.environ.get(env)
    if not key:
        raise EvalError(
            f"{who}: environment variable {env} is not set; export it with the API key, or set "
            "api_key_env to null for an endpoint without authentication"
        )
    return key


@dataclass
class EndpointChat:
    """An OpenAI-compatible ``/chat/completions`` endpoint. ``base_url`` includes the version
    prefix (``http://localhost:8000/v1``); ``client`` lets tests pass an in-process transport."""

    base_url: str
    model: str
    api_key: str | None = None
    max_tokens: int = 512
    temperature: float = 0.0
    timeout: float = 60.0
    concurrency: int = 8
    retries: int = 2
    client: httpx.Client | None = None
    _owned: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.client is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self.client = httpx.Client(headers=headers, timeout=self.timeout)
            self._owned = True

    @property
    def name(self) -> str:
        return f"{self.model} at {self.base_url}"

    def complete(self, conversation: Conversation) -> str:
        assert self.client is not None
        url = self.base_url.rstrip("/") + "/chat/completions"
        body = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in conversation],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        for attempt in range(self.retries + 1):
            try:
                response = self.client.post(url, json=body)
            except httpx.HTTPError as exc:
                if attempt < self.retries:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise EvalError(f"chat endpoint {url} unreachable: {exc}") from exc
            if response.status_code in _RETRY_STATUS and attempt < self.retries:
                time.sleep(0.5 * 2**attempt)
                continue
            return self._content(response, url)
        raise AssertionError("unreachable")

    def _content(self, response: httpx.Response, url: str) -> str:
        try:
            data: Any = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            message = data.get("error", data) if isinstance(data, dict) else response.text[:300]
            raise EvalError(f"chat endpoint {url} answered {response.status_code}: {message}")
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise EvalError(
                f"chat endpoint {url} sent no choices[0].message.content: {str(data)[:300]}"
            ) from None
        return content or ""

    def complete_many(self, conversations: Sequence[Conversation]) -> list[str]:
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(self.complete, conversations))

    def close(self) -> None:
        if self._owned and self.client is not None:
            self.client.close()


@dataclass
class SamplerChat:
    """A SamplingClient answering in text through ``renderer`` (greedy by default)."""

    sampler: Sampler
    renderer: Renderer
    label: str = "backend model"
    max_tokens: int = 512
    temperature: float = 0.0

    @property
    def name(self) -> str:
        return self.label

    def complete_many(self, conversations: Sequence[Conversation]) -> list[str]:
        stop = sampling_stop(self.renderer.stop_sequences)
        params = types.SamplingParams(
            max_tokens=self.max_tokens, temperature=self.temperature, stop=stop or None
        )
        futures = [
            self.sampler.sample(
                types.ModelInput.from_ints(self.renderer.render_prompt(list(c))), 1, params
            )
            for c in conversations
        ]
        replies = []
        for future in futures:
            try:
                sequence = future.result().sequences[0]
            except Exception as exc:
                raise EvalError(f"{self.label}: sampling failed: {exc}") from exc
            replies.append(self.renderer.parse_response(sequence.tokens))
        return replies
