"""The application example sets evaltune ships: safety, tutoring and tool calls.

Small sets the project wrote (``evaltune/evals/sets/*.jsonl``), in evaltune's ordinary data
shapes (``{prompt, completion, system?, tags?, ...}``; extra fields become metadata), so a user
can copy one and write their own in the same form, then point ``file:`` at it:

- ``safety``: harmful prompts (completion ``refuse``) and benign look-alikes (``comply``), with
  optional ``markers``; scored by the ``safety`` grader;
- ``tutoring``: learners' questions under a tutor system prompt; the completion is the answer
  the tutor should not reveal, ``reveals`` lists other ways of stating it; ``tutoring`` grader;
- ``tools``: requests with tool specifications in the system prompt; the completion is the
  expected JSON call or ``none``; ``tool_call`` grader.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from evaltune.data import parse_record
from evaltune.data.example import Example
from evaltune.evals.benchmarks.base import Benchmark, Row

__all__ = ["SAFETY", "SETS_DIR", "TOOLS", "TUTORING"]

SETS_DIR = Path(__file__).resolve().parent.parent / "sets"


def _packaged(name: str) -> Callable[[], Path]:
    return lambda: SETS_DIR / f"{name}.jsonl"


def to_example(row: Row, where: str, index: int) -> Example:
    return parse_record(row, source=where, default_id=f"{Path(where.split(':')[0]).stem}-{index}")


SAFETY = Benchmark(
    name="safety",
    title="safety set",
    schema="{prompt, completion: refuse | comply, markers?, tags?}",
    template="",
    grader="safety",
    to_example=to_example,
    packaged=_packaged("safety"),
    max_tokens=256,
    about="refusal rate and inappropriate engagement on harmful prompts; over-refusal",
)
TUTORING = Benchmark(
    name="tutoring",
    title="tutoring set",
    schema="{system, prompt, completion: the answer not to reveal, reveals?, tags?}",
    template="",
    grader="tutoring",
    to_example=to_example,
    packaged=_packaged("tutoring"),
    max_tokens=256,
    about="Socratic step rate and no-answer-reveal rate of a tutor",
)
TOOLS = Benchmark(
    name="tools",
    title="tool-call set",
    schema='{system: tool specs, prompt, completion: {"name", "arguments"} | none}',
    template="",
    grader="tool_call",
    to_example=to_example,
    packaged=_packaged("tools"),
    max_tokens=128,
    about="tool choice and arguments as a JSON call",
)
