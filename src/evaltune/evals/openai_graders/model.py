"""The OpenAI graders that ask a model: ``score_model`` and ``label_model``, on the judge client.

Both render their ``input`` messages (templates in every text part; ``developer`` is sent as
``system``) and send them through a ``chat.ChatBackend``, the client evaltune's LLM judge uses:
an OpenAI-compatible endpoint (OpenAI itself, vLLM, Ollama, ``evaltune serve``) or any backend
a caller passes. OpenAI has the model answer in a structured-output schema; an arbitrary
endpoint may not support one, so the last user message also asks for that JSON in words and
the reply is read leniently:

- ``score_model``: ``{"steps": [...], "result": <number>}``; the last JSON object with a
  ``result`` wins, else a score as the LLM judge reads one (``judge.parse_score``: ``[[n]]``,
  ``score: n``, a bare number on the last line). The value must lie in ``range`` (default
  ``[0, 1]``); the score is its place in the range; it passes at ``pass_threshold`` when one
  is given. A reply without a readable value scores 0, its tail in the detail.
- ``label_model``: ``{"label": ...}``, else the reply that is exactly one of ``labels``, else
  the one label it names; 1 when that label is in ``passing_labels``.

``sampling_params`` ``temperature`` and ``max_completions_tokens`` are sent; the rest
(``top_p``, ``seed``, ``reasoning_effort``) are not part of the judge client and are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evaltune.data.example import Message
from evaltune.errors import EvalError
from evaltune.evals.chat import ChatBackend
from evaltune.evals.judge import parse_score
from evaltune.evals.openai_graders.base import Context, NodeScore, Spec
from evaltune.evals.openai_graders.templates import render

__all__ = ["ChatFactory", "LabelModel", "ScoreModel"]

# (model, sampling_params) → the client that asks it
ChatFactory = Callable[[str, Mapping[str, Any]], ChatBackend]
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_DECODER = json.JSONDecoder()


def _parts(content: Any, where: str) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, Mapping):
        if content.get("type") in ("input_text", "output_text") and "text" in content:
            return [str(content["text"])]
        raise EvalError(
            f"{where}: content of type {content.get('type')!r} is not supported; "
            "send text (input_text)"
        )
    if isinstance(content, list):
        return [text for part in content for text in _parts(part, where)]
    raise EvalError(f"{where}: message content must be text; found {content!r:.80}")


def _messages(spec: Spec) -> list[tuple[str, str]]:
    raw = spec.get("input", list)
    out = []
    for i, m in enumerate(raw):
        where = f"{spec.where} input[{i}]"
        if not isinstance(m, Mapping) or m.get("role") not in _ROLES:
            raise EvalError(
                f"{where}: expected {{role, content}} with role system, developer, "
                "user or assistant"
            )
        out.append((_ROLES[m["role"]], "".join(_parts(m.get("content"), where))))
    if not out:
        raise EvalError(f"{spec.where}: input has no messages")
    return out


def _ask(template: list[tuple[str, str]], context: Context, instruction: str) -> list[Message]:
    messages = [Message(role, render(text, context)) for role, text in template]
    if messages[-1].role == "user":  # one user turn: templates that want alternation accept it
        messages[-1] = Message("user", f"{messages[-1].content}\n\n{instruction}")
    else:
        messages.append(Message("user", instruction))
    return messages


def _json_objects(reply: str) -> list[Any]:
    found, at = [], reply.find("{")
    while at >= 0:
        try:
            obj, end = _DECODER.raw_decode(reply, at)
        except ValueError:
            at = reply.find("{", at + 1)
            continue
        found.append(obj)
        at = reply.find("{", end)
    return found


def _tail(reply: str) -> str:
    return repr(" ".join(reply.split())[-120:])


@dataclass(frozen=True)
class ScoreModel:
    name: str
    template: list[tuple[str, str]]
    chat: ChatBackend
    low: float
    high: float
    pass_threshold: float | None

    @classmethod
    def build(cls, spec: Spec, chats: ChatFactory) -> ScoreModel:
        bounds = spec.get("range", list, [0, 1])
        low, high = bounds if len(bounds) == 2 else (None, None)
        if not (isinstance(low, int | float) and isinstance(high, int | float) and low < high):
            raise EvalError(f"{spec.where}: range must be [low, high] with low < high")
        model = spec.get("model", str)
        params = spec.get("sampling_params", Mapping, {})
        threshold = spec.get("pass_threshold", (int, float), None)
        return cls(spec.name, _messages(spec), chats(model, params), low, high, threshold)

    @property
    def instruction(self) -> str:
        return (
            'Reply with only a JSON object: {"steps": [{"description": "...", "conclusion": '
            f'"..."}}], "result": <a number from {self.low:g} to {self.high:g}>}}'
        )

    def grade_many(self, contexts: Sequence[Context]) -> list[NodeScore]:
        replies = self.chat.complete_many(
            [_ask(self.template, c, self.instruction) for c in contexts]
        )
        return [self._score(reply) for reply in replies]

    def _score(self, reply: str) -> NodeScore:
        value: float | None = None
        for obj in reversed(_json_objects(reply)):
            result = obj.get("result") if isinstance(obj, dict) else None
            if isinstance(result, int | float) and not isinstance(result, bool):
                value = float(result) if self.low <= result <= self.high else None
                break
        else:
            value = parse_score(reply, self.low, self.high)
        if value is None:
            return NodeScore(0.0, 0.0, f"{self.chat.name} gave no score in range: {_tail(reply)}")
        score = (value - self.low) / (self.high - self.low)
        passed = None if self.pass_threshold is None else value >= self.pass_threshold
        return NodeScore(value, score, f"{self.chat.name} scored {value:g}", passed=passed)


@dataclass(frozen=True)
class LabelModel:
    name: str
    template: list[tuple[str, str]]
    chat: ChatBackend
    labels: tuple[str, ...]
    passing: tuple[str, ...]

    @classmethod
    def build(cls, spec: Spec, chats: ChatFactory) -> LabelModel:
        labels = tuple(str(x) for x in spec.get("labels", list))
        passing = tuple(str(x) for x in spec.get("passing_labels", list))
        if not labels or not set(passing) <= set(labels):
            raise EvalError(
                f"{spec.where}: labels must be non-empty and passing_labels a subset of them"
            )
        model = spec.get("model", str)
        params = spec.get("sampling_params", Mapping, {})
        return cls(spec.name, _messages(spec), chats(model, params), labels, passing)

    @property
    def instruction(self) -> str:
        return f'Reply with only a JSON object: {{"label": <one of {json.dumps(self.labels)}>}}'

    def grade_many(self, contexts: Sequence[Context]) -> list[NodeScore]:
        replies = self.chat.complete_many(
            [_ask(self.template, c, self.instruction) for c in contexts]
        )
        return [self._score(reply) for reply in replies]

    def _label(self, reply: str) -> str | None:
        for obj in reversed(_json_objects(reply)):
            if isinstance(obj, dict) and str(obj.get("label")) in self.labels:
                return str(obj["label"])
        bare = reply.strip().strip("\"'`.").casefold()
        exact = [x for x in self.labels if x.casefold() == bare]
        if exact:
            return exact[0]
        named = [x for x in self.labels if re.search(rf"\b{re.escape(x)}\b", reply, re.IGNORECASE)]
        return named[0] if len(named) == 1 else None

    def _score(self, reply: str) -> NodeScore:
        label = self._label(reply)
        if label is None:
            return NodeScore(0.0, 0.0, f"{self.chat.name} gave none of the labels: {_tail(reply)}")
        ok = float(label in self.passing)
        return NodeScore(ok, ok, f"{self.chat.name} labelled it {label!r}")
