"""The ``tool_call`` grader: did the model call the right tool with the right arguments?

The target is the expected call as JSON, ``{"name": ..., "arguments": {...}}``, or ``none``
when the right move is to answer without a tool. The response's call is the first JSON object
in it (inside a code fence or not) with a ``name`` and ``arguments`` (or ``parameters`` /
``args``), also in OpenAI's ``{"function": {"name", "arguments": "<json string>"}}`` shape.

Arguments match when they have the same keys and equal values: strings compared after
``graders.normalize_text``, numbers by value (``3`` = ``3.0``), lists and objects recursively.
Per-sample metrics: ``tool_name_match`` and ``tool_args_match`` (both 0/1); the score is 1 when
both match (for a ``none`` target: when the response makes no call).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evaltune.data.example import Example
from evaltune.errors import EvalError
from evaltune.evals.graders import EMPTY, GradeResult, normalize_text

__all__ = ["ToolCallGrader", "find_tool_call", "same_value"]

_DECODER = json.JSONDecoder()


def _as_call(obj: Any) -> dict[str, Any] | None:
    if not isinstance(obj, Mapping):
        return None
    if isinstance(obj.get("function"), Mapping):
        obj = obj["function"]
    name = obj.get("name") or obj.get("tool")
    args = next((obj[k] for k in ("arguments", "parameters", "args") if k in obj), None)
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return None
    if not isinstance(name, str) or not isinstance(args, Mapping):
        return None
    return {"name": name, "arguments": dict(args)}


def find_tool_call(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` shaped like a tool call, as ``{name, arguments}``."""
    for start, ch in enumerate(text):
        if ch != "{":
            continue
        try:
            obj, _ = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        call = _as_call(obj)
        if call is not None:
            return call
    return None


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, str) and isinstance(b, str):
        return normalize_text(a) == normalize_text(b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@dataclass(frozen=True)
class ToolCallGrader:
    def __call__(self, response: str, target: str, example: Example) -> GradeResult:
        if not response.strip():
            return GradeResult(0.0, EMPTY, {"tool_name_match": 0.0, "tool_args_match": 0.0})
        got = find_tool_call(response)
        if normalize_text(target) == "none":
            ok = got is None
            detail = "answered without a tool" if ok else f"called {got['name']!r}; expected none"
            return GradeResult(
                float(ok), detail, {"tool_name_match": float(ok), "tool_args_match": float(ok)}
            )
        want = find_tool_call(target)
        if want is None:
            raise EvalError(
                f"tool_call grader: example {example.id!r} has target {target!r}; expected "
                'a JSON call {"name": ..., "arguments": {...}} or none'
            )
        if got is None:
            return GradeResult(
                0.0,
                f"no tool call found; expected {want['name']!r}",
                {"tool_name_match": 0.0, "tool_args_match": 0.0},
            )
        name_ok = got["name"] == want["name"]
        args_ok = name_ok and same_value(got["arguments"], want["arguments"])
        if not name_ok:
            detail = f"called {got['name']!r}; expected {want['name']!r}"
        elif not args_ok:
            got_args, want_args = json.dumps(got["arguments"]), json.dumps(want["arguments"])
            detail = f"{got['name']} arguments {got_args} != {want_args}"
        else:
            detail = f"called {got['name']} with the expected arguments"
        metrics = {"tool_name_match": float(name_ok), "tool_args_match": float(args_ok)}
        return GradeResult(float(args_ok), detail, metrics)
