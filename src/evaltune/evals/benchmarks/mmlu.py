"""MMLU-style multiple choice: a question, lettered options, one correct letter.

Upstream schemas, both accepted:

- ``cais/mmlu``: ``{question, choices: [...], answer: <index 0-3>}``, optional ``subject``;
- the original CSV / ``lukaemon/mmlu`` shape: ``{question (or input), A, B, C, D, answer (or
  target): "B"}``.

``answer`` may be an index (``1``, ``"1"``) or a letter (``"B"``). Up to ten options (A–J).
The prompt is MMLU's canonical zero-shot format ending in ``Answer:``; the scorer is the
``choice`` grader (``graders.extract_choice``: "B", "(B)", "B. Paris", "The answer is B",
or the text of one option). The tag is the subject, when given.
"""

from __future__ import annotations

from collections.abc import Sequence

from evaltune.data.example import Example
from evaltune.errors import DataError
from evaltune.evals.benchmarks.base import Benchmark, HubSource, Row, require
from evaltune.evals.graders import LETTERS

__all__ = ["BENCHMARK", "TEMPLATE", "format_question"]

TEMPLATE = (
    "The following is a multiple choice question{about}. Answer with the letter of the "
    "correct option.\n\n{question}\n{options}\nAnswer:"
)


def format_question(question: str, choices: Sequence[str], subject: str | None = None) -> str:
    about = f" about {subject.replace('_', ' ')}" if subject else ""
    options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
    return TEMPLATE.format(about=about, question=question.strip(), options=options)


def _choices(row: Row, where: str) -> list[str]:
    if "choices" in row:
        choices = row["choices"]
        if not isinstance(choices, list | tuple) or not all(isinstance(c, str) for c in choices):
            raise DataError(f"{where}: field 'choices' should be a list of strings")
        return list(choices)
    lettered = [row[k] for k in LETTERS if k in row]
    if len(lettered) < 2:
        raise DataError(f"{where}: missing options: give 'choices' (a list) or fields A, B, C, D")
    return [str(c) for c in lettered]


def _letter(answer: object, n: int, where: str) -> str:
    if isinstance(answer, bool):
        answer = None
    text = str(answer).strip() if answer is not None else ""
    if text.isdigit() and int(text) < n:
        return LETTERS[int(text)]
    if len(text) == 1 and text.upper() in LETTERS[:n]:
        return text.upper()
    raise DataError(
        f"{where}: field 'answer' should be an option index 0-{n - 1} or a letter "
        f"A-{LETTERS[n - 1]}; found {answer!r}"
    )


def to_example(row: Row, where: str, index: int) -> Example:
    question = row.get("question", row.get("input"))
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: missing field 'question'")
    choices = _choices(row, where)
    if len(choices) > len(LETTERS):
        raise DataError(f"{where}: {len(choices)} options; at most {len(LETTERS)} are supported")
    answer = row["answer"] if "answer" in row else row.get("target")
    letter = _letter(answer, len(choices), where)
    subject = row.get("subject")
    subject = subject if isinstance(subject, str) and subject.strip() else None
    if "id" in row:
        require(row, "id", (str, int), where)
    return Example.single_turn(
        str(row.get("id", f"mmlu-{index}")),
        format_question(question, choices, subject),
        letter,
        tags=(subject,) if subject else (),
        metadata={"choices": choices, "question": question},
        source=where,
    )


BENCHMARK = Benchmark(
    name="mmlu",
    title="MMLU",
    schema="{question, choices: [...] | A, B, C, D, answer: index | letter, subject?}",
    template=TEMPLATE,
    grader="choice",
    to_example=to_example,
    hub=HubSource("cais/mmlu", "all", "test"),
    max_tokens=32,
    about="multiple choice; letter extraction",
)
