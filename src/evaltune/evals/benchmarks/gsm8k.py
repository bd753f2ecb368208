"""GSM8K: grade-school math word problems with a numeric final answer.

Upstream schema (``openai/gsm8k``, config ``main``): ``{question, answer}``, where ``answer`` is
the worked solution ending in a line ``#### <number>``; the calculator annotations
``<<48/2=24>>`` inside it are removed from the example's completion (which can also serve as a
training target in the same format). Optional ``id`` and ``tags`` are kept.

Final-number extraction (``extract_final_answer``), first that applies: the number after the
last ``####``; after the last "answer is" / "Answer:"; inside the last ``\\boxed{}``; else the
last number in the response. Three match modes, all reported per sample as metrics
(``exact_match``, ``numeric_match``, ``partial_match``); ``match`` picks which one is the score:

- ``exact``: the extracted answer, with ``$``, thousands commas and a trailing ``.`` removed,
  equals the reference string (``18`` ≠ ``18.00``);
- ``numeric`` (default): the extracted number equals the reference number (``18.00`` = ``18``,
  ``1,000`` = ``1000``);
- ``partial``: the reference number appears anywhere among the response's numbers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from evaltune.data.example import Example
from evaltune.errors import DataError, EvalError
from evaltune.evals.benchmarks.base import Benchmark, HubSource, Row, require
from evaltune.evals.graders import EMPTY, GradeResult, extract_numbers

__all__ = ["BENCHMARK", "TEMPLATE", "GSM8KGrader", "extract_final_answer", "reference_answer"]

TEMPLATE = (
    "Solve the following math word problem. Reason step by step, then give the final answer "
    'as a number on the last line in the form "#### <number>".\n\n'
    "Question: {question}"
)
_CALC = re.compile(r"<<[^>]*>>")
_NUM = r"[-+−]?\$?\s?(?:\d[\d,]*(?:\.\d+)?|\.\d+)"
_HASHES = re.compile(rf"####\s*({_NUM})")
_SAYS = re.compile(rf"(?i)(?:answer\s*(?:is|:)|answer\s+is\s*:)\s*\**\s*({_NUM})")
_BOXED = re.compile(rf"\\boxed\{{\s*({_NUM})\s*\}}")


def reference_answer(answer: str) -> str | None:
    """The reference number after the last ``####`` of an upstream answer, commas removed."""
    tail = answer.rsplit("####", 1)
    if len(tail) != 2:
        return None
    return tail[1].strip().replace(",", "").rstrip(".") or None


def extract_final_answer(response: str) -> str | None:
    """The final answer as written (see the module docstring for the order tried)."""
    for pattern in (_HASHES, _SAYS, _BOXED):
        found = pattern.findall(response)
        if found:
            return found[-1].strip()
    numbers = re.findall(_NUM, response)
    return numbers[-1].strip() if numbers else None


def _clean(text: str) -> str:
    return text.replace("$", "").replace(",", "").replace(" ", "").replace("−", "-").rstrip(".")


def _value(text: str) -> float | None:
    found = extract_numbers(_clean(text))
    return found[0][0] if found else None


@dataclass(frozen=True)
class GSM8KGrader:
    """The final number against the reference (``match``: exact, numeric, partial)."""

    match: str = "numeric"

    def __post_init__(self) -> None:
        if self.match not in ("exact", "numeric", "partial"):
            raise EvalError(f"gsm8k grader: match {self.match!r}; choose exact, numeric, partial")

    def __call__(self, response: str, target: str, example: Example) -> GradeResult:
        want = reference_answer(target) or target.strip()
        want_value = _value(want)
        if not response.strip():
            zero = {"exact_match": 0.0, "numeric_match": 0.0, "partial_match": 0.0}
            return GradeResult(0.0, EMPTY, zero)
        got = extract_final_answer(response)
        got_value = _value(got) if got else None
        exact = got is not None and _clean(got) == _clean(want)
        numeric = (
            got_value is not None
            and want_value is not None
            and math.isclose(got_value, want_value, rel_tol=1e-9, abs_tol=1e-9)
        )
        partial = want_value is not None and any(
            math.isclose(v, want_value, rel_tol=1e-9, abs_tol=1e-9)
            for v, _ in extract_numbers(response.replace("$", ""))
        )
        metrics = {
            "exact_match": float(exact),
            "numeric_match": float(numeric),
            "partial_match": float(partial),
        }
        score = {"exact": exact, "numeric": numeric, "partial": partial}[self.match]
        detail = f"final answer {got!r}, expected {want!r}" if got else "no number in response"
        return GradeResult(float(score), detail, metrics)


def to_example(row: Row, where: str, index: int) -> Example:
    question = require(row, "question", str, where)
    answer = require(row, "answer", str, where)
    if reference_answer(answer) is None:
        raise DataError(f"{where}: field 'answer' has no final '#### <number>' line")
    tags = row.get("tags") or ()
    return Example.single_turn(
        str(row.get("id", f"gsm8k-{index}")),
        TEMPLATE.format(question=question.strip()),
        _CALC.sub("", answer).strip(),
        tags=tuple(tags) if isinstance(tags, list | tuple) else (str(tags),),
        metadata={"question": question},
        source=where,
    )


BENCHMARK = Benchmark(
    name="gsm8k",
    title="GSM8K",
    schema="{question, answer ending in '#### <number>'}",
    template=TEMPLATE,
    grader="gsm8k",
    to_example=to_example,
    hub=HubSource("openai/gsm8k", "main", "test"),
    max_tokens=512,
    about="grade-school math word problems; final-number match (exact, numeric, partial)",
)
