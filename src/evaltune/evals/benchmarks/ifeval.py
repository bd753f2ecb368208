"""IFEval: verifiable instructions ("answer in under 100 words", "no commas", "end with ...").

Upstream schema (``google/IFEval``): ``{key, prompt, instruction_id_list, kwargs}``, where
``kwargs`` holds one dict per instruction (``None`` values are ignored, as upstream). The prompt
is used as is (IFEval's canonical prompt is the record's own); there is no reference answer.

Checking is the PyPI package ``if-verifiable`` (its ``evaluate_instructions`` with the IFEval
registry of 25 instruction types), imported on first use. Per sample:

- score: prompt-level *strict* (1 when every instruction is followed; ``mode: loose`` scores the
  loose variant, which also accepts the response without its first/last line or ``*``);
- metrics ``prompt_strict``, ``prompt_loose``, ``instruction_strict``, ``instruction_loose``:
  the last two are the fraction of the prompt's instructions followed, so their suite mean is the
  mean per prompt (IFEval's instruction-level accuracy pools all instructions instead; it differs
  when prompts carry different numbers of instructions);
- tags: the instruction groups present (``detectable_format``, ``length_constraints``, ...).

Two deviations from a networked setup, both deterministic: NLTK's ``punkt_tab`` sentence model
(a download) is replaced, when not installed, by a bundled one with no training data but a
list of common abbreviations, so sentence and word counts work offline; and ``langdetect`` is
seeded (``DetectorFactory.seed = 0``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaltune.data.example import Example
from evaltune.errors import DataError, EvalError
from evaltune.evals.benchmarks.base import Benchmark, HubSource, Row, require
from evaltune.evals.graders import EMPTY, GradeResult

__all__ = ["BENCHMARK", "IFEvalGrader", "instruction_registry"]

_NLTK_DATA = Path(__file__).with_name("nltk_data")


@functools.cache
def instruction_registry() -> dict[str, Any]:
    """if-verifiable's IFEval instruction registry (id → checker class), set up for offline use."""
    try:
        import langdetect
        import nltk
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
    except ImportError as exc:
        raise EvalError(
            f"the ifeval benchmark needs the `if-verifiable` package ({exc}); "
            "pip install if-verifiable"
        ) from None
    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        nltk.data.path.append(str(_NLTK_DATA))
    langdetect.DetectorFactory.seed = 0
    return dict(INSTRUCTION_DICT)


@dataclass(frozen=True)
class IFEvalGrader:
    """Prompt-level strict (or loose) instruction following, via if-verifiable."""

    mode: str = "strict"

    def __post_init__(self) -> None:
        if self.mode not in ("strict", "loose"):
            raise EvalError(f"ifeval grader: mode {self.mode!r}; choose strict or loose")

    def __call__(self, response: str, target: str, example: Example) -> GradeResult:
        ids = list(example.metadata.get("instruction_id_list") or ())
        if not ids:
            raise EvalError(
                f"ifeval grader: example {example.id!r} has no metadata 'instruction_id_list'; "
                "use it on IFEval records (benchmark: ifeval)"
            )
        zero = {
            "prompt_strict": 0.0,
            "prompt_loose": 0.0,
            "instruction_strict": 0.0,
            "instruction_loose": 0.0,
        }
        if not response.strip():
            return GradeResult(0.0, EMPTY, zero)
        from if_verifiable.common import evaluate_instructions

        results, scores = evaluate_instructions(
            response=response,
            instruction_id_list=ids,
            kwargs_list=list(example.metadata.get("kwargs") or [{}] * len(ids)),
            prompt=example.prompt,
            instruction_registry=instruction_registry(),
        )
        metrics = {
            "prompt_strict": scores.binary_strict,
            "prompt_loose": scores.binary_loose,
            "instruction_strict": scores.partial_strict,
            "instruction_loose": scores.partial_loose,
        }
        passed = [r.strict_pass if self.mode == "strict" else r.loose_pass for r in results]
        detail = f"{self.mode} {sum(passed)}/{len(passed)}: " + ", ".join(
            f"{r.instruction_id} {'ok' if ok else 'FAILED'}"
            for r, ok in zip(results, passed, strict=True)
        )
        return GradeResult(metrics[f"prompt_{self.mode}"], detail, metrics)


def _kwargs(row: Row, n: int, where: str) -> list[dict[str, Any]]:
    kwargs = row.get("kwargs") or [{}] * n
    if not isinstance(kwargs, list) or len(kwargs) != n:
        raise DataError(
            f"{where}: field 'kwargs' should be a list of {n} dicts, one per instruction"
        )
    if not all(isinstance(k, dict) for k in kwargs):
        raise DataError(f"{where}: field 'kwargs' should hold dicts")
    return [{k: v for k, v in d.items() if v is not None} for d in kwargs]


def to_example(row: Row, where: str, index: int) -> Example:
    prompt = require(row, "prompt", str, where)
    ids: Sequence[Any] = require(row, "instruction_id_list", list, where)
    known = instruction_registry()
    unknown = [i for i in ids if i not in known]
    if unknown or not ids:
        raise DataError(
            f"{where}: instruction ids {unknown or '[]'} are not IFEval instructions; "
            f"known: {', '.join(sorted(known))}"
        )
    key = row.get("key", row.get("id", f"ifeval-{index}"))
    groups = tuple(sorted({str(i).split(":")[0] for i in ids}))
    return Example.single_turn(
        str(key),
        prompt,
        "",
        tags=groups,
        metadata={"instruction_id_list": list(ids), "kwargs": _kwargs(row, len(ids), where)},
        source=where,
    )


BENCHMARK = Benchmark(
    name="ifeval",
    title="IFEval",
    schema="{key, prompt, instruction_id_list, kwargs}",
    template="",
    grader="ifeval",
    to_example=to_example,
    hub=HubSource("google/IFEval", None, "train"),
    max_tokens=1024,
    about="verifiable instruction following (if-verifiable); prompt-level strict",
)
