"""Tutoring metrics: does a tutor guide the learner instead of handing over the answer?

The ``tutoring`` grader reads the item's target as the reference answer the tutor should *not*
give away, and reports two per-sample metrics (each a suite metric with a 95 % interval):

- ``socratic_step_rate``: 1 when the response guides: it asks the learner a question (a
  sentence ending in ``?``) or gives a step or hint (one of ``STEP_MARKERS``: "first", "step 1",
  "start by", "try", "hint", "think about", "what happens", ...);
- ``no_answer_reveal_rate``: 1 when the reference answer does not appear in the response:
  neither its normalised text as a whole phrase (``graders.normalize_text``), nor, when the
  answer is a number, that number among the response's numbers (``3/4`` = ``0.75``), nor any
  of the item's ``metadata["reveals"]`` (other ways to state the answer).

The score is 1 only when both hold. These are heuristics, documented so a number can be read:
a response that states the answer as a question ("Is it 42?") reveals it. For a graded
judgement use the ``judge`` grader with ``rubric: socratic``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from evaltune.data.example import Example
from evaltune.evals.graders import EMPTY, GradeResult, extract_numbers, normalize_text

__all__ = ["STEP_MARKERS", "TutoringGrader", "asks_question", "gives_step", "reveals_answer"]

STEP_MARKERS = (
    "first",
    "step 1",
    "next step",
    "start by",
    "begin by",
    "let's start",
    "let us start",
    "try",
    "hint",
    "think about",
    "consider",
    "notice",
    "remember",
    "what happens",
    "what do you",
    "can you",
    "how would you",
    "how many",
)
_STEP = re.compile(r"\b(?:" + "|".join(re.escape(m) for m in STEP_MARKERS) + r")\b")
_QUESTION = re.compile(r"[^.!?\n]*\w[^.!?\n]*\?")


def asks_question(response: str) -> bool:
    return _QUESTION.search(response) is not None


def gives_step(response: str) -> bool:
    return _STEP.search(normalize_text(response).replace("’", "'")) is not None


def _phrase_in(phrase: str, text: str) -> bool:
    return bool(phrase) and re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


def reveals_answer(response: str, answer: str, reveals: tuple[str, ...] = ()) -> str | None:
    """What gives the answer away (the matched text), or None."""
    text = normalize_text(response)
    for phrase in (answer, *reveals):
        if _phrase_in(normalize_text(phrase), text):
            return phrase
    wanted = extract_numbers(answer)
    numeric = normalize_text(answer).replace(" ", "").lstrip("-+−$").rstrip("%")[:1].isdigit()
    if wanted and numeric:  # "3/4", "-2", "$5": a number; "the 15th century": a phrase
        target = wanted[-1][0]
        for value, _ in extract_numbers(response):
            if math.isclose(value, target, rel_tol=1e-9, abs_tol=1e-12):
                return f"{value:g}"
    return None


@dataclass(frozen=True)
class TutoringGrader:
    """Socratic step and no-answer-reveal, per response (see the module docstring)."""

    def __call__(self, response: str, target: str, example: Example) -> GradeResult:
        if not response.strip():
            return GradeResult(
                0.0, EMPTY, {"socratic_step_rate": 0.0, "no_answer_reveal_rate": 1.0}
            )
        question, step = asks_question(response), gives_step(response)
        reveals = tuple(str(r) for r in example.metadata.get("reveals") or ())
        revealed = reveals_answer(response, target, reveals)
        socratic = question or step
        parts = [
            "asks a question"
            if question
            else ("gives a step" if step else "neither asks nor guides"),
            f"reveals the answer ({revealed!r})" if revealed else "answer not revealed",
        ]
        return GradeResult(
            float(socratic and revealed is None),
            "; ".join(parts),
            {"socratic_step_rate": float(socratic), "no_answer_reveal_rate": float(not revealed)},
        )
