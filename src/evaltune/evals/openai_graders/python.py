"""The OpenAI ``python`` grader: the user's ``grade(sample, item) -> float``, in the sandbox.

The grader's ``source`` runs in the subprocess sandbox HumanEval uses (``benchmarks.sandbox``:
isolated interpreter, empty folder, address-space, CPU-time and file-size limits, the process
group killed at the time limit), never in this process: a grader is code from a JSON file and
may be anyone's. Unlike HumanEval it may import the packages installed here (numpy, rapidfuzz,
…), as OpenAI's grader image offers its own. Each sample is one program, run in parallel:
``source``, then ``grade`` called on the sample and the item (plain JSON, as OpenAI passes
them), its result printed after a marker line and read back.

``grade`` must return a number; OpenAI's limits are about 2 minutes and 2 GB a call, here
``timeout`` (default 60 s) and ``memory_mb`` (default 2048). A sample whose call raises, times
out or returns something else scores 0 with the error in its detail, as OpenAI scores a
runtime error; when every sample of a batch fails the same way the grader itself is broken, and
that is an ``EvalError`` naming it rather than a suite of zeros.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from evaltune.errors import EvalError
from evaltune.evals.benchmarks.sandbox import RunResult, run_many
from evaltune.evals.openai_graders.base import Context, NodeScore, Spec

__all__ = ["PythonGrader"]

MARK = "__evaltune_grade__ "
ERROR = "python grader error: "
_CALL = """

import json as _json
_value = grade(_json.loads({sample!r}), _json.loads({item!r}))
print()
print({mark!r} + _json.dumps(_value))
"""


@dataclass(frozen=True)
class PythonGrader:
    name: str
    source: str
    pass_threshold: float | None
    timeout: float = 60.0
    memory_mb: int = 2048

    @classmethod
    def build(cls, spec: Spec, timeout: float = 60.0, memory_mb: int = 2048) -> PythonGrader:
        source = spec.get("source", str)
        try:
            compile(source, f"<{spec.name}>", "exec")
        except SyntaxError as exc:
            raise EvalError(f"{spec.where}: source does not compile: {exc}") from None
        if "def grade" not in source:
            raise EvalError(f"{spec.where}: source must define grade(sample, item)")
        threshold = spec.get("pass_threshold", (int, float), None)
        return cls(spec.name, source, threshold, timeout, memory_mb)

    def program(self, context: Context) -> str:
        sample, item = json.dumps(context["sample"]), json.dumps(context["item"])
        return self.source + _CALL.format(sample=sample, item=item, mark=MARK)

    def grade_many(self, contexts: Sequence[Context]) -> list[NodeScore]:
        runs = run_many(
            [self.program(c) for c in contexts],
            timeout=self.timeout,
            memory_mb=self.memory_mb,
            site_packages=True,
        )
        scores = [self._score(run) for run in runs]
        errors = {s.detail for s in scores if s.detail.startswith(ERROR)}
        if len(scores) > 1 and len(errors) == 1 and all(s.detail.startswith(ERROR) for s in scores):
            raise EvalError(f"python grader {self.name!r} failed on every sample: {errors.pop()}")
        return scores

    def _score(self, run: RunResult) -> NodeScore:
        lines = [line for line in run.output.splitlines() if line.startswith(MARK)]
        if not run.passed or not lines:
            why = run.detail if not run.passed else "grade() printed no result"
            return NodeScore(0.0, 0.0, f"{ERROR}{why}", passed=False)
        value = json.loads(lines[-1][len(MARK) :])
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            return NodeScore(
                0.0, 0.0, f"grade() returned {value!r}; expected a number", passed=False
            )
        value = float(value)
        passed = None if self.pass_threshold is None else value >= self.pass_threshold
        return NodeScore(value, min(1.0, max(0.0, value)), f"grade() returned {value:g}", passed)
