"""The grader catalogue: every grader by the name a suite config uses, and ``make_grader``.

The one list of grader names (``GRADER_NAMES``): the string graders of ``graders.GRADERS``
first, then the rest, below. A config is checked against it (``loop.context`` hands it to
``config.names``) and the CLI lists it; nothing else spells the names out. Options are the
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
| ``openai`` | an OpenAI grader's JSON (``openai_graders``) | ``openai_grader``, ``base_url``, ``api_key_env``, ``backend`` |
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from evaltune.errors import EvalError
from evaltune.evals.benchmarks.competition_math import MathGrader
from evaltune.evals.benchmarks.gsm8k import GSM8KGrader
from evaltune.evals.benchmarks.humaneval import HumanEvalGrader
from evaltune.evals.benchmarks.ifeval import IFEvalGrader
from evaltune.evals.graders import GRADERS, Grader
from evaltune.evals.judge import JudgeGrader
from evaltune.evals.openai_graders import make_openai_grader
from evaltune.evals.overlap import F1Grader
from evaltune.evals.pyfunc import make_function_grader
from evaltune.evals.safety import SafetyGrader
from evaltune.evals.tools import ToolCallGrader
from evaltune.evals.tutoring import TutoringGrader

__all__ = ["EXTRA_GRADERS", "GRADER_NAMES", "all_graders", "make_grader"]

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
    "openai": make_openai_grader,
}

GRADER_NAMES: tuple[str, ...] = (*GRADERS, *EXTRA_GRADERS)
"""Every grader name, in the order errors and docs list them."""


def all_graders() -> dict[str, Callable[..., Grader]]:
    """Every grader by name: ``graders.GRADERS`` first, then ``EXTRA_GRADERS``."""
    return {**GRADERS, **EXTRA_GRADERS}


def make_grader(name: str, **options: Any) -> Grader:
    """The grader ``name`` with its options (``regex``: ``pattern``, ``ignore_case``;
    ``numeric``: ``rel_tol``, ``abs_tol``; the others in the table above); unknown names and
    options raise ``EvalError``."""
    factories = all_graders()
    try:
        factory = factories[name]
    except KeyError:
        raise EvalError(f"unknown grader {name!r}; choose one of: {', '.join(factories)}") from None
    signature = inspect.signature(factory)
    try:
        signature.bind(**options)
    except TypeError as exc:
        accepted = ", ".join(signature.parameters) or "no options"
        raise EvalError(f"grader {name!r}: {exc}; it takes: {accepted}") from None
    return factory(**options)
