"""OpenAI grader templates: ``{{ item.x }}`` and ``{{ sample.y }}`` in a grader's strings.

As OpenAI's graders guide describes: a template is ``{{ namespace.variable }}`` with namespace
``item`` (the eval item: the data row) or ``sample`` (the model's answer: ``output_text``,
``output_json``, ``output_tools``, ``choices``), and nested values are reached with a JSON-path
like syntax: ``{{ item.a.b }}``, ``{{ sample.output_tools[0].function.name }}``,
``{{ item["key with spaces"] }}``. A string value is put in as it is, anything else as JSON
(``None`` as an empty string). A template naming a value the item or sample does not have is an
``EvalError`` that names the template: a typo would otherwise score every sample 0.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from evaltune.errors import EvalError

__all__ = ["NAMESPACES", "lookup", "render"]

NAMESPACES = ("item", "sample")
_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\[\s*(['\"])(.*?)\3\s*\]")
_HEAD = re.compile(r"([A-Za-z_]\w*)")


def _steps(path: str) -> tuple[str, list[str | int]]:
    head = _HEAD.match(path)
    if head is None:
        raise EvalError(f"template {{{{ {path} }}}}: expected namespace.variable, e.g. item.answer")
    steps: list[str | int] = []
    at = head.end()
    while at < len(path):
        m = _STEP.match(path, at)
        if m is None:
            raise EvalError(
                f"template {{{{ {path} }}}}: cannot read {path[at:]!r}; write .key, [0] or "
                '["key"] after the namespace'
            )
        steps.append(int(m[2]) if m[2] is not None else (m[1] or m[4]))
        at = m.end()
    return head[1], steps


def lookup(path: str, context: Mapping[str, Any]) -> Any:
    """The value ``path`` (``item.a[0].b``) names in ``context`` (``{"item": ..., "sample":
    ...}``)."""
    namespace, steps = _steps(path)
    if namespace not in NAMESPACES:
        raise EvalError(
            f"template {{{{ {path} }}}}: unknown namespace {namespace!r}; use item or sample"
        )
    value: Any = context[namespace]
    for step in steps:
        found = (
            isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value)
        ) or (isinstance(step, str) and isinstance(value, Mapping) and step in value)
        if found:
            value = value[step]
        else:
            have = (
                ", ".join(map(str, value)) if isinstance(value, Mapping) else type(value).__name__
            )
            raise EvalError(
                f"template {{{{ {path} }}}}: no {step!r} there (found: {have or 'nothing'})"
            )
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def render(text: str, context: Mapping[str, Any]) -> str:
    """``text`` with every template replaced by its value."""
    return _TEMPLATE.sub(lambda m: _text(lookup(m[1], context)), text)
