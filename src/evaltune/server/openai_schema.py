"""OpenAI-compatible request bodies and response objects (the subset evaltune serve speaks).

Requests are validated up front so a bad field is a 400 naming it; fields this server does
not implement are refused when they would change the answer (``tools``, and on chat
``logprobs``) and otherwise ignored, as OpenAI-compatible servers commonly do. Completions
take ``logprobs`` (up to ``MAX_LOGPROBS`` alternatives) and ``echo`` (``server.logprobs``). Responses follow
OpenAI's shapes (``text_completion``, ``chat.completion`` and their stream chunks).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evaltune.engine.sampling import SEED_MAX, SEED_MIN
from evaltune.server.http import ApiError

__all__ = [
    "ChatRequest",
    "Choice",
    "CompletionRequest",
    "StreamChunks",
    "chat_response",
    "completion_response",
    "message_text",
]

MAX_N = 64
MAX_STOPS = 16
MAX_LOGPROBS = 20  # top alternatives per position (OpenAI allows 5, vLLM 20)


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")
    # Fields that would change the answer and that this route does not implement: a 400.
    refused: ClassVar[tuple[str, ...]] = (
        "logprobs", "top_logprobs", "echo", "tools", "functions", "suffix",
    )  # fmt: skip

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
    stream: bool = False
    stream_options: dict[str, Any] | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOPS or any(not s for s in stops):
            raise ValueError(f"at most {MAX_STOPS} non-empty stop strings")
        return value

    @model_validator(mode="after")
    def _unsupported(self) -> _Request:
        extra = self.model_extra or {}
        for name in self.refused:
            if extra.get(name) not in (None, False, 0, [], ""):
                raise ValueError(f"{name} is not supported by evaltune serve")
        return self

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class CompletionRequest(_Request):
    refused: ClassVar[tuple[str, ...]] = ("tools", "functions", "suffix")
    max_tokens: int | None = Field(16, ge=0)  # OpenAI's default for /v1/completions
    prompt: str | list[str] | list[int] | list[list[int]]
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)
    echo: bool = False

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and (not value or any(v == [] for v in value)):
            raise ValueError("prompt must not be empty (nor hold an empty token list)")
        return value

    @model_validator(mode="after")
    def _scoring(self) -> CompletionRequest:
        if self.max_tokens == 0 and not self.echo:
            raise ValueError("max_tokens 0 generates nothing; it is allowed only with echo: true")
        if self.stream and (self.echo or self.logprobs is not None):
            raise ValueError("logprobs and echo are not supported with stream: true")
        return self


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)

    @property
    def token_budget(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


def message_text(message: ChatMessage) -> str:
    """A message's text; content parts other than text are a 400."""
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    texts = []
    for part in message.content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ApiError(
                400, f"message content part {part.get('type')!r} is not supported; send text"
            )
        texts.append(part["text"])
    return "".join(texts)


class Choice(BaseModel):
    text: str
    finish_reason: Literal["stop", "length"]
    tokens: int
    token_ids: list[int] = Field(default_factory=list)
    logprobs: dict[str, Any] | None = None  # OpenAI's completions object (server.logprobs)


def _envelope(kind: str, model: str) -> dict[str, Any]:
    prefix = "chatcmpl" if kind.startswith("chat") else "cmpl"
    return {
        "id": f"{prefix}-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
    }


def _usage(prompt_tokens: int, choices: list[Choice]) -> dict[str, int]:
    completion = sum(c.tokens for c in choices)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }


def completion_response(model: str, choices: list[Choice], prompt_tokens: int) -> dict[str, Any]:
    body = _envelope("text_completion", model)
    body["choices"] = [
        {"index": i, "text": c.text, "logprobs": c.logprobs, "finish_reason": c.finish_reason}
        for i, c in enumerate(choices)
    ]
    body["usage"] = _usage(prompt_tokens, choices)
    return body


def chat_response(model: str, choices: list[Choice], prompt_tokens: int) -> dict[str, Any]:
    body = _envelope("chat.completion", model)
    body["choices"] = [
        {
            "index": i,
            "message": {"role": "assistant", "content": c.text},
            "logprobs": None,
            "finish_reason": c.finish_reason,
        }
        for i, c in enumerate(choices)
    ]
    body["usage"] = _usage(prompt_tokens, choices)
    return body


class StreamChunks:
    """The chunks of one streamed answer (``chat.completion.chunk`` or ``text_completion``),
    all with the stream's one id: an opening role delta (chat), text deltas, the finish reasons
    and, when asked for, usage."""

    def __init__(self, chat: bool, model: str, prompt_tokens: int) -> None:
        self.chat = chat
        self.base = _envelope("chat.completion.chunk" if chat else "text_completion", model)
        self.prompt_tokens = prompt_tokens

    def _choice(self, i: int, text: str | None, finish: str | None) -> dict[str, Any]:
        if self.chat:
            delta = {} if text is None else {"content": text}
            return {"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": i, "text": text or "", "logprobs": None, "finish_reason": finish}

    def start(self, choices: int) -> list[dict[str, Any]]:
        if not self.chat:
            return []
        opening = [
            {"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            for i in range(choices)
        ]
        return [{**self.base, "choices": opening}]

    def delta(self, i: int, text: str) -> dict[str, Any]:
        return {**self.base, "choices": [self._choice(i, text, None)]}

    def finish(self, i: int, reason: str) -> dict[str, Any]:
        return {**self.base, "choices": [self._choice(i, None, reason)]}

    def usage(self, choices: list[Choice]) -> dict[str, Any]:
        return {**self.base, "choices": [], "usage": _usage(self.prompt_tokens, choices)}
