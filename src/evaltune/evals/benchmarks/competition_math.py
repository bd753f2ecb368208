"""MATH (Hendrycks et al., "competition math"): problems whose answer is a LaTeX expression.

Upstream schema: ``{problem, solution}`` with the answer in the solution's last ``\\boxed{}``;
optional ``level`` ("Level 3"), ``type`` or ``subject`` ("Algebra"), ``answer`` (MATH-500 gives
it separately; used when present) and ``unique_id`` / ``id``. Tags: the subject (lower case,
spaces as ``_``) and ``level-N``.

The response's answer (``extract_answer``) is its last ``\\boxed{}``, else the text after the
last "Answer:" / "answer is" on its line, else ``None``. It is compared with the reference by
``latex.same_answer`` (normalised text, or equal numbers); the score is 1 or 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from evaltune.data.example import Example
from evaltune.errors import DataError
from evaltune.evals.benchmarks.base import Benchmark, HubSource, Row, require
from evaltune.evals.benchmarks.latex import last_boxed, normalize_answer, same_answer
from evaltune.evals.graders import EMPTY, GradeResult

__all__ = ["BENCHMARK", "TEMPLATE", "MathGrader", "extract_answer"]

TEMPLATE = (
    "Solve the following math problem. Reason step by step, and put your final answer "
    "within \\boxed{{}}.\n\n{problem}"
)
_SAID = re.compile(r"(?i)(?:final answer|answer)\s*(?:is|:)\s*:?\s*(.+)")


def extract_answer(response: str) -> str | None:
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    found = _SAID.findall(response)
    if found:
        answer = found[-1].strip().rstrip(".").strip()
        return answer.strip("$ ") or None
    return None


@dataclass(frozen=True)
class MathGrader:
    """The boxed (or stated) answer against the reference, equal after LaTeX normalisation."""

    def __call__(self, response: str, target: str, example: Example) -> GradeResult:
        if not response.strip():
            return GradeResult(0.0, EMPTY)
        want = str(example.metadata.get("answer") or last_boxed(target) or target)
        got = extract_answer(response)
        if got is None:
            return GradeResult(0.0, f"no \\boxed{{}} answer found; expected {want!r}")
        ok = same_answer(got, want)
        shown = f"{normalize_answer(got)!r} vs {normalize_answer(want)!r}"
        return GradeResult(float(ok), ("equivalent: " if ok else "different: ") + shown)


def _tag(text: str) -> str:
    return re.sub(r"\s+", "_", text.strip().lower())


def to_example(row: Row, where: str, index: int) -> Example:
    problem = require(row, "problem", str, where)
    solution = require(row, "solution", str, where)
    answer = row.get("answer")
    if answer is None:
        answer = last_boxed(solution)
    if not answer:
        raise DataError(f"{where}: field 'solution' has no \\boxed{{}} answer (and no 'answer')")
    tags = []
    subject = row.get("type") or row.get("subject")
    if isinstance(subject, str) and subject.strip():
        tags.append(_tag(subject))
    level = row.get("level")
    if level is not None and (m := re.search(r"\d+", str(level))):
        tags.append(f"level-{m.group(0)}")
    return Example.single_turn(
        str(row.get("unique_id") or row.get("id") or f"math-{index}"),
        TEMPLATE.format(problem=problem.strip()),
        solution.strip(),
        tags=tuple(tags),
        metadata={"answer": str(answer), "problem": problem},
        source=where,
    )


BENCHMARK = Benchmark(
    name="math",
    title="MATH",
    schema="{problem, solution with \\boxed{answer}, level?, type?}",
    template=TEMPLATE,
    grader="math",
    to_example=to_example,
    hub=HubSource("HuggingFaceH4/MATH-500", None, "test"),
    max_tokens=1024,
    about="competition math; boxed-answer extraction and LaTeX normalisation",
)
