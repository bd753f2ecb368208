"""An OpenAI grader as an evaltune grader: the ``openai`` grader of a suite.

``make_openai_grader(openai_grader=...)`` takes the grader's JSON (an object, or the path of a
``.json`` file holding one) and builds its tree of nodes (``NODES``: ``string_check``,
``text_similarity``, ``python``, ``score_model``, ``label_model``, ``multi``), checking every
key first, so a broken grader stops a config at load, not a run at round 3. Each suite item
is graded with the two namespaces OpenAI's templates read:

- ``item``: the item's own fields as its file has them beyond the prompt and answer
  (``Example.metadata``: ``{{item.reference_answer}}``), with ``id``, ``tags``, ``prompt``
  (the last user message), ``messages`` (the prompt's), and the reference answer as
  ``completion`` and ``reference`` (a field of the file by one of those names wins);
- ``sample``: ``output_text`` (the response), ``output_json`` (the response parsed, when it is
  JSON), ``output_tools`` (the tool call it makes, as OpenAI's ``[{"type": "function",
  "function": {"name", "arguments"}}]``; ``tools.find_tool_call`` reads it) and ``choices``.

The result is a ``GradeResult``: the score in [0, 1], correct by the top grader's own rule
(``pass_threshold``, passing labels) or else at full credit, the node's detail, and as
per-sample metrics the raw output when it is not the score (``grader_value``) and each
``multi`` sub-grader's output by its key. Model graders ask ``backend`` when one is given,
else the OpenAI-compatible endpoint at ``base_url`` (default ``$OPENAI_BASE_URL``, else
OpenAI's) with the key in ``api_key_env`` (default ``OPENAI_API_KEY``), one client per model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaltune.data.example import Example
from evaltune.errors import EvalError
from evaltune.evals.chat import ChatBackend, EndpointChat, api_key_from_env
from evaltune.evals.graders import EMPTY, GradeResult
from evaltune.evals.openai_graders.base import Context, Node, Spec
from evaltune.evals.openai_graders.checks import StringCheck, TextSimilarity
from evaltune.evals.openai_graders.model import ChatFactory, LabelModel, ScoreModel
from evaltune.evals.openai_graders.multi import MultiGrader
from evaltune.evals.openai_graders.python import PythonGrader
from evaltune.evals.tools import find_tool_call

__all__ = ["NODES", "OpenAIGrader", "build_node", "item_of", "make_openai_grader", "sample_of"]

NODES = ("string_check", "text_similarity", "python", "score_model", "label_model", "multi")
OPENAI_URL = "https://api.openai.com/v1"


def build_node(data: object, where: str, chats: ChatFactory) -> Node:
    """The node for one grader object (and its sub-graders)."""
    spec = Spec(data, where)
    if spec.type == "string_check":
        return StringCheck.build(spec)
    if spec.type == "text_similarity":
        return TextSimilarity.build(spec)
    if spec.type == "python":
        return PythonGrader.build(spec)
    if spec.type == "score_model":
        return ScoreModel.build(spec, chats)
    if spec.type == "label_model":
        return LabelModel.build(spec, chats)
    if spec.type == "multi":
        return MultiGrader.build(spec, lambda sub, at: build_node(sub, at, chats))
    raise EvalError(
        f"{where}: unknown grader type {spec.type!r}; choose one of: {', '.join(NODES)}"
    )


def item_of(example: Example, target: str) -> dict[str, Any]:
    """The ``item`` namespace of ``example`` (see the module docstring)."""
    derived: dict[str, Any] = {
        "id": example.id,
        "tags": list(example.tags),
        "prompt": example.prompt,
        "messages": [{"role": m.role, "content": m.content} for m in example.prompt_messages],
        "completion": target,
        "reference": target,
    }
    return {**derived, **example.metadata}


def sample_of(response: str) -> dict[str, Any]:
    """The ``sample`` namespace of a response (see the module docstring)."""
    try:
        output_json = json.loads(response)
    except ValueError:
        output_json = None
    call = find_tool_call(response)
    tools = []
    if call is not None:
        arguments = json.dumps(call["arguments"], ensure_ascii=False)
        function = {"name": call["name"], "arguments": arguments}
        tools = [{"id": "call_0", "type": "function", "function": function}]
    message = {"role": "assistant", "content": response, "tool_calls": tools or None}
    return {
        "output_text": response,
        "output_json": output_json,
        "output_tools": tools,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
    }


@dataclass(frozen=True)
class OpenAIGrader:
    """A ``BatchGrader``: every response of a suite goes through the node tree at once."""

    node: Node
    label: str

    def __call__(self, response: str, target: str, example: Example) -> GradeResult:
        return self.grade_batch([(response, target, example)])[0]

    def grade_batch(self, items: Sequence[tuple[str, str, Example]]) -> list[GradeResult]:
        asked = [i for i, (response, _, _) in enumerate(items) if response.strip()]
        contexts: list[Context] = [
            {"item": item_of(items[i][2], items[i][1]), "sample": sample_of(items[i][0])}
            for i in asked
        ]
        scores = dict(zip(asked, self.node.grade_many(contexts) if contexts else [], strict=True))
        results = []
        for i in range(len(items)):
            s = scores.get(i)
            if s is None:
                results.append(GradeResult(0.0, EMPTY))
                continue
            metrics = dict(s.parts)
            if s.value != s.score:
                metrics["grader_value"] = s.value
            results.append(GradeResult(s.score, f"{self.label}: {s.detail}", metrics, s.passed))
        return results


def _read(openai_grader: Mapping[str, Any] | str) -> Any:
    if isinstance(openai_grader, Mapping):
        return openai_grader
    path = Path(openai_grader)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvalError(f"openai grader file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise EvalError(f"openai grader file {path}: not JSON ({exc})") from None


class _Endpoint:
    """A model grader's endpoint client, made when first asked: a key that is not set is an
    error only for a grader that calls a model, when it does."""

    def __init__(self, base_url: str, api_key_env: str | None, model: str, params: Any) -> None:
        self.base_url, self.api_key_env, self.model, self.params = (
            base_url,
            api_key_env,
            model,
            params,
        )
        self.name = f"{model} at {base_url}"
        self.chat: EndpointChat | None = None

    def complete_many(self, conversations: Sequence[Any]) -> list[str]:
        if self.chat is None:
            key = api_key_from_env(self.api_key_env, f"openai grader model {self.model}")
            self.chat = EndpointChat(
                self.base_url,
                self.model,
                key,
                max_tokens=int(self.params.get("max_completions_tokens") or 1024),
                temperature=float(self.params.get("temperature", 0.0)),
            )
        return self.chat.complete_many(conversations)


def make_openai_grader(
    openai_grader: Mapping[str, Any] | str,
    backend: ChatBackend | None = None,
    base_url: str | None = None,
    api_key_env: str | None = "OPENAI_API_KEY",
) -> OpenAIGrader:
    """The ``openai`` grader: ``openai_grader`` is the grader JSON or a ``.json`` file's path;
    model graders ask ``backend``, else the endpoint at ``base_url`` (module docstring)."""
    url = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL

    def chats(model: str, params: Mapping[str, Any]) -> ChatBackend:
        return backend if backend is not None else _Endpoint(url, api_key_env, model, params)

    data = _read(openai_grader)
    node = build_node(data, "openai grader", chats)
    return OpenAIGrader(node, f"{Spec(data, '').type} {node.name!r}")
