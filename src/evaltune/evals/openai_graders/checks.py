"""The two OpenAI graders that need no model: ``string_check`` and ``text_similarity``.

``string_check`` renders ``input`` and ``reference`` and compares them with ``operation``, as
OpenAI's guide defines it: ``eq`` (1 when equal, case-sensitive), ``ne`` (1 when not equal),
``like`` (1 when the input contains the reference, case-sensitive), ``ilike`` (the same, case
ignored); nothing is stripped or normalised. ``text_similarity`` scores ``input`` against
``reference`` with ``evaluation_metric`` (``similarity``) and passes at ``pass_threshold`` or
above (the evals form has one; the fine-tuning form has none: then only a perfect score passes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evaltune.evals.openai_graders.base import Context, NodeScore, Spec
from evaltune.evals.openai_graders.similarity import METRICS, similarity
from evaltune.evals.openai_graders.templates import render

__all__ = ["OPERATIONS", "StringCheck", "TextSimilarity"]

OPERATIONS: dict[str, Callable[[str, str], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "like": lambda a, b: b in a,
    "ilike": lambda a, b: b.casefold() in a.casefold(),
}


def _short(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "…")


@dataclass(frozen=True)
class StringCheck:
    name: str
    input: str
    reference: str
    operation: str

    @classmethod
    def build(cls, spec: Spec) -> StringCheck:
        return cls(
            spec.name,
            spec.get("input", str),
            spec.get("reference", str),
            spec.choice("operation", list(OPERATIONS)),
        )

    def grade_many(self, contexts: Sequence[Context]) -> list[NodeScore]:
        out = []
        for context in contexts:
            a, b = render(self.input, context), render(self.reference, context)
            ok = OPERATIONS[self.operation](a, b)
            verdict = "yes" if ok else "no"
            detail = f"{_short(a)} {self.operation} {_short(b)}: {verdict}"
            out.append(NodeScore(float(ok), float(ok), detail))
        return out


@dataclass(frozen=True)
class TextSimilarity:
    name: str
    input: str
    reference: str
    metric: str
    pass_threshold: float | None

    @classmethod
    def build(cls, spec: Spec) -> TextSimilarity:
        return cls(
            spec.name,
            spec.get("input", str),
            spec.get("reference", str),
            spec.choice("evaluation_metric", list(METRICS)),
            spec.get("pass_threshold", (int, float), None),
        )

    def grade_many(self, contexts: Sequence[Context]) -> list[NodeScore]:
        out = []
        for context in contexts:
            a, b = render(self.input, context), render(self.reference, context)
            value = similarity(self.metric, a, b)
            if self.pass_threshold is None:
                out.append(NodeScore(value, value, f"{self.metric} {value:.3f}"))
                continue
            detail = f"{self.metric} {value:.3f} (pass at {self.pass_threshold:g})"
            out.append(NodeScore(value, value, detail, passed=value >= self.pass_threshold))
        return out
