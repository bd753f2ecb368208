"""Every grader beyond the string graders of ``graders``, by the name a suite config uses.

``graders.make_grader`` looks names up in ``graders.GRADERS`` and then here; options are the
factory's keyword arguments (``make_grader`` reports unknown or missing ones):

| name | what it scores | options |
| --- | --- | --- |
| ``f1`` | SQuAD token F1 (``overlap``) | |
| ``gsm8k`` | final number (``benchmarks.gsm8k``) | ``match``: exact, numeric, partial |
| ``math`` | boxed LaTeX answer (``benchmarks.competition_math``) | |
| ``ifeval`` | verifiable instructions (``benchmarks.ifeval``) | ``mode``: strict, loose |
| ``humaneval`` | unit tests in a subprocess (``benchmarks.humaneval``) | ``timeout``, ``memory_mb``, ``workers`` |
| ``tutoring`` | Socratic step, no answer reveal (``tutoring``) | |
| ``safety`` | refusal, engagement, over-refusal (``safety``) | |
| ``tool_call`` | JSON tool call (``tools``) | |
| ``judge`` | LLM-as-judge (``judge``) | ``backend``, ``rubric``, ``min_score``, ``max_score``, ``pass_score`` |
| ``python`` | the user's function (``pyfunc``) | ``function`` |
"""

from __future__ import annotations

from collections.abc import Callable

from evaltune.evals.benchmarks.competition_math import MathGrader
from evaltune.evals.benchmarks.gsm8k import GSM8KGrader
from evaltune.evals.benchmarks.humaneval import HumanEvalGrader
from evaltune.evals.benchmarks.ifeval import IFEvalGrader
from evaltune.evals.graders import GRADERS, Grader
from evaltune.evals.judge import JudgeGrader
from evaltune.evals.overlap import F1Grader
from evaltune.evals.pyfunc import make_function_grader
from evaltune.evals.safety import SafetyGrader
from evaltune.evals.tools import ToolCallGrader
from evaltune.evals.tutoring import TutoringGrader

__all__ = ["EXTRA_GRADERS", "GRADER_NAMES"]

EXTRA_GRADERS: dict[str, Callable[..., Grader]] = {
    "f1": F1Grader,
    "gsm8k": GSM8KGrader,
    "math": MathGrader,
    "ifeval": IFEvalGrader,
    "humaneval": HumanEvalGrader,
    "tutoring": TutoringGrader,
    "safety": SafetyGrader,
    "tool_call": ToolCallGrader,
    "judge": JudgeGrader,
    "python": make_function_grader,
}

GRADER_NAMES: tuple[str, ...] = (*GRADERS, *EXTRA_GRADERS)
"""Every grader name, in the order errors and docs list them (config mirrors it)."""
