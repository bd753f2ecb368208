"""What every OpenAI grader node shares: its score, its protocol, and reading its JSON.

A node is one grader of the JSON (``string_check``, ``text_similarity``, ``python``,
``score_model``, ``label_model``, ``multi``), built once from its object and then asked to
grade many samples at once (``grade_many``: one context ``{"item": ..., "sample": ...}`` per
sample), so model graders send their requests together and python graders run in parallel.
A node's ``NodeScore`` keeps its raw value (what ``multi``'s formula sees: a ``score_model``
on its own range) and the score in [0, 1] that evaltune aggregates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from evaltune.errors import EvalError

__all__ = ["Context", "Node", "NodeScore", "Spec"]

Context = Mapping[str, Any]  # {"item": {...}, "sample": {...}}


@dataclass(frozen=True)
class NodeScore:
    value: float  # the grader's own output (the reward OpenAI reports)
    score: float  # in [0, 1]
    detail: str
    passed: bool | None = None  # None: full credit passes; else the grader's own pass rule
    parts: dict[str, float] = field(default_factory=dict)  # multi: each sub-grader's value


class Node(Protocol):
    name: str

    def grade_many(self, contexts: Sequence[Context]) -> list[NodeScore]: ...


class Spec:
    """A grader's JSON object, read with errors that name the grader and the key."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise EvalError(f"{where}: expected a grader object with a type; found {data!r:.80}")
        self.data = data
        self.type = str(data.get("type"))
        self.name = str(data.get("name") or self.type)
        self.where = f"{where} ({self.type} {self.name!r})"

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise EvalError(f"{self.where}: missing {key!r}")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise EvalError(f"{self.where}: {key!r} must be a {names}; found {value!r:.80}")
        return value

    def choice(self, key: str, choices: Sequence[str]) -> str:
        value = self.get(key, str)
        if value not in choices:
            raise EvalError(f"{self.where}: {key} {value!r} is not one of: {', '.join(choices)}")
        return str(value)
