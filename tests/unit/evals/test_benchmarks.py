"""Benchmark formats on small fixture files in the upstream schemas (tests/fixtures/benchmarks,
items the project wrote): loading, canonical prompts, tags, scorers on right and wrong answers,
schema errors with file:line, the hub path (a stand-in ``datasets``), limits and bundles."""

from __future__ import annotations

import json
import sys
import types as pytypes
from pathlib import Path

import pytest

from evaltune.data.example import Example
from evaltune.errors import DataError, EvalError
from evaltune.evals import make_grader
from evaltune.evals.benchmarks import (
    BENCHMARKS,
    BUNDLES,
    TEMPLATES,
    bundle_items,
    get_benchmark,
    load_benchmark,
    read_rows,
)
from evaltune.evals.benchmarks.gsm8k import extract_final_answer, reference_answer

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks"


def grade(name: str, example: Example, response: str, **options: object) -> tuple[float, dict]:
    result = make_grader(name, **options)(response, example.completion, example)
    assert result.detail
    return result.score, result.metrics


# -- GSM8K ------------------------------------------------------------------------------------
def test_gsm8k_loads_with_its_canonical_prompt() -> None:
    data = load_benchmark("gsm8k", file=FIXTURES / "gsm8k.jsonl")
    assert len(data.examples) == 8 and data.source.endswith("gsm8k.jsonl")
    first = data.examples[0]
    assert first.id == "gsm8k-0"
    assert first.prompt.startswith("Solve the following math word problem.")
    assert first.prompt.endswith(
        "Question: A baker makes 24 muffins in the morning and 18 in "
        "the afternoon. She sells 35 of them. How many muffins are left?"
    )
    assert "<<" not in first.completion and first.completion.endswith("#### 7")
    assert first.source == f"{FIXTURES / 'gsm8k.jsonl'}:1"
    assert data.examples[7].tags == ("large-numbers",)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("So the answer is 42.\n#### 7", "7"),  # the #### line wins over later text
        ("The answer is $1,200.", "$1,200"),
        ("Answer: -7 degrees", "-7"),
        ("It is \\boxed{150}", "150"),
        ("First 3, then 5, so 8 in total", "8"),
        ("no digits", None),
    ],
)
def test_gsm8k_final_answer_extraction(response: str, expected: str | None) -> None:
    assert extract_final_answer(response) == expected


def test_gsm8k_reference_answer() -> None:
    assert reference_answer("x\n#### 10,000") == "10000"
    assert reference_answer("no marker") is None


@pytest.mark.parametrize(
    ("index", "response", "exact", "numeric", "partial"),
    [
        (0, "42 - 35 = 7\n#### 7", 1, 1, 1),
        (0, "#### 7.00", 0, 1, 1),
        (0, "I get 7 left... no wait, #### 8", 0, 0, 1),
        (0, "#### 8", 0, 0, 0),
        (6, "The temperature is −7 degrees.", 1, 1, 1),  # a typographic minus
        (7, "#### 10000", 1, 1, 1),
        (7, "There are 10,000 tulips.", 1, 1, 1),
        (1, "He spends $14.", 1, 1, 1),
    ],
)
def test_gsm8k_exact_numeric_and_partial_match(
    index: int, response: str, exact: int, numeric: int, partial: int
) -> None:
    example = load_benchmark("gsm8k", file=FIXTURES / "gsm8k.jsonl").examples[index]
    expected = {"exact_match": exact, "numeric_match": numeric, "partial_match": partial}
    score, metrics = grade("gsm8k", example, response)
    assert metrics == expected and score == numeric
    for mode, value in (("exact", exact), ("partial", partial)):
        assert grade("gsm8k", example, response, match=mode)[0] == value


def test_gsm8k_bad_rows_are_reported_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "gsm8k.jsonl"
    rows = [
        {"question": "q?", "answer": "no final line"},
        {"question": "q2?"},
        {"answer": "#### 1"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DataError) as info:
        load_benchmark("gsm8k", file=path)
    message = str(info.value)
    assert "3 GSM8K record(s) do not match the upstream schema" in message
    assert f"{path}:1: field 'answer' has no final '#### <number>' line" in message
    assert f"{path}:2: missing field 'answer'" in message
    assert f"{path}:3: missing field 'question'" in message


def test_gsm8k_grader_rejects_an_unknown_match_mode() -> None:
    with pytest.raises(EvalError, match="choose exact, numeric, partial"):
        make_grader("gsm8k", match="fuzzy")


# -- MATH -------------------------------------------------------------------------------------
def test_math_loads_boxed_answers_and_tags() -> None:
    examples = load_benchmark("math", file=FIXTURES / "math.jsonl").examples
    assert [e.metadata["answer"] for e in examples] == [
        "\\frac{3}{4}",
        "120^\\circ",
        "4",
        "5\\sqrt{2}",
        "\\dfrac{3}{4}",
        "(2,-1)",
        "25",  # MATH-500's separate answer field
    ]
    assert examples[1].tags == ("geometry", "level-2")
    assert examples[4].tags == ("number_theory", "level-1")
    assert examples[5].id == "test/algebra/fixture-6.json"
    assert examples[0].prompt.startswith("Solve the following math problem.")
    assert examples[0].prompt.endswith("within \\boxed{}.\n\nSimplify $\\frac{6}{8}$.")


@pytest.mark.parametrize(
    ("index", "response", "score"),
    [
        (0, "So it is $\\boxed{\\dfrac{3}{4}}$.", 1),
        (0, "\\boxed{0.75}", 1),
        (0, "\\boxed{3/4}", 1),
        (0, "\\boxed{\\frac{4}{3}}", 0),
        (1, "Each angle is \\boxed{120}.", 1),
        (1, "\\boxed{120 degrees}", 1),
        (2, "\\boxed{x = 4}", 1),
        (2, "\\boxed{4.0}", 1),
        (3, "\\boxed{5 \\sqrt 2}", 1),
        (5, "The point is \\boxed{\\left(2, -1\\right)}", 1),
        (5, "\\boxed{(-1, 2)}", 0),
        (6, "Final answer: 25 square centimeters", 1),
        (6, "\\boxed{25\\text{ cm}^2}", 1),  # units go, exponent and all
        (2, "x is four", 0),
    ],
)
def test_math_equivalence(index: int, response: str, score: int) -> None:
    example = load_benchmark("math", file=FIXTURES / "math.jsonl").examples[index]
    assert grade("math", example, response)[0] == score


def test_math_row_without_a_boxed_answer(tmp_path: Path) -> None:
    path = tmp_path / "math.json"
    path.write_text(json.dumps([{"problem": "p", "solution": "no box"}]))
    with pytest.raises(DataError, match=r"math.json:item 0: field 'solution' has no \\boxed"):
        load_benchmark("math", file=path)


# -- MMLU -------------------------------------------------------------------------------------
def test_mmlu_both_upstream_shapes() -> None:
    indexed = load_benchmark("mmlu", file=FIXTURES / "mmlu.jsonl").examples
    lettered = load_benchmark("mmlu", file=FIXTURES / "mmlu_letters.jsonl").examples
    assert [e.completion for e in indexed] == ["B", "C", "D", "A", "B"]
    assert [e.completion for e in lettered] == ["C", "B", "A"]
    assert indexed[0].tags == ("astronomy",) and lettered[0].tags == ()
    assert indexed[0].prompt == (
        "The following is a multiple choice question about astronomy. Answer with the letter of "
        "the correct option.\n\nWhich planet is closest to the Sun?\n"
        "A. Venus\nB. Mercury\nC. Earth\nD. Mars\nAnswer:"
    )


@pytest.mark.parametrize(
    ("response", "score"),
    [("B", 1), (" B. Mercury", 1), ("The answer is (B).", 1), ("Mercury", 1), ("A", 0), ("", 0)],
)
def test_mmlu_letter_extraction(response: str, score: int) -> None:
    example = load_benchmark("mmlu", file=FIXTURES / "mmlu.jsonl").examples[0]
    assert make_grader("choice")(response, example.completion, example).score == score


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"question": "q", "choices": ["a", "b"], "answer": 2}, "index 0-1 or a letter A-B"),
        ({"question": "q", "choices": ["a", "b"], "answer": "E"}, "found 'E'"),
        ({"question": "q", "A": "a"}, "give 'choices'"),
        ({"choices": ["a", "b"], "answer": 0}, "missing field 'question'"),
    ],
)
def test_mmlu_schema_errors(tmp_path: Path, row: dict, match: str) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=match):
        load_benchmark("mmlu", file=path)


# -- IFEval -----------------------------------------------------------------------------------
IFEVAL_CASES = [
    # key index, response, prompt-level strict
    (0, "Our cat Tom is lost. Please call me if you see him.", 1),
    (0, "Our cat, Tom, is lost.", 0),
    (1, "Golden light spills over quiet hills as the sun rises.", 1),
    (1, " ".join(["word"] * 45), 0),
    (2, "apples, bananas and cherries are three fruits that i like to eat every day.", 1),
    (2, "Apples, bananas and cherries.", 0),
    (
        3,
        "Soft rain on the roof\nwhispers to the sleeping town\n"
        "Is there anything else I can help with?",
        1,
    ),
    (4, "* plastic bottles can be reused\n* glass jars melt down\n* paper is pulped", 1),
    (4, "* plastic bottles\n* paper", 0),
    (5, '{"sea": "The sea is vast and blue."}', 1),
    (5, "The sea is vast.", 0),
    (6, "Sunlight scatters off air molecules. Blue light scatters most. So the sky looks blue.", 1),
    (6, "Because of scattering.", 0),
]


@pytest.mark.parametrize(("index", "response", "strict"), IFEVAL_CASES)
def test_ifeval_prompt_level_strict(index: int, response: str, strict: int) -> None:
    example = load_benchmark("ifeval", file=FIXTURES / "ifeval.jsonl").examples[index]
    score, metrics = grade("ifeval", example, response)
    assert score == strict == metrics["prompt_strict"]
    assert set(metrics) == {"prompt_strict", "prompt_loose", "instruction_strict",
                            "instruction_loose"}  # fmt: skip


def test_ifeval_examples_keep_kwargs_and_tag_instruction_groups() -> None:
    examples = load_benchmark("ifeval", file=FIXTURES / "ifeval.jsonl").examples
    assert examples[0].id == "9001" and examples[0].completion == ""
    assert examples[0].metadata["kwargs"] == [{}]  # upstream nulls dropped
    assert examples[4].tags == ("detectable_format", "keywords")
    assert examples[4].prompt.startswith("Explain recycling")  # the record's own prompt


def test_ifeval_partial_credit_and_loose_mode() -> None:
    example = load_benchmark("ifeval", file=FIXTURES / "ifeval.jsonl").examples[4]
    score, metrics = grade("ifeval", example, "* plastic\n* glass\n* paper\n* metal")
    assert score == 0 and metrics["instruction_strict"] == 0.5
    haiku = load_benchmark("ifeval", file=FIXTURES / "ifeval.jsonl").examples[3]
    bold = "Rain\n**Is there anything else I can help with?**"
    assert grade("ifeval", haiku, bold)[0] == 0
    assert grade("ifeval", haiku, bold, mode="loose")[0] == 1


def test_ifeval_unknown_instruction_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "ifeval.jsonl"
    row = {"key": 1, "prompt": "p", "instruction_id_list": ["made:up"], "kwargs": [{}]}
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"\['made:up'\] are not IFEval instructions; known: "):
        load_benchmark("ifeval", file=path)


# -- loading, limits, the hub, bundles --------------------------------------------------------
def test_limit_keeps_the_first_items_or_spreads_them() -> None:
    path = FIXTURES / "gsm8k.jsonl"
    assert [e.id for e in load_benchmark("gsm8k", file=path, limit=3).examples] == [
        "gsm8k-0", "gsm8k-1", "gsm8k-2"]  # fmt: skip
    spread = load_benchmark("gsm8k", file=path, limit=4, spread=True).examples
    assert [e.id for e in spread] == ["gsm8k-0", "gsm8k-2", "gsm8k-4", "gsm8k-6"]


def test_read_rows_formats(tmp_path: Path) -> None:
    import gzip

    rows = [{"a": 1}, {"a": 2}]
    (tmp_path / "r.json").write_text(json.dumps({"data": rows}))
    with gzip.open(tmp_path / "r.jsonl.gz", "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in rows))
    assert [r for _, r in read_rows(tmp_path / "r.json")] == rows
    assert [w for w, _ in read_rows(tmp_path / "r.jsonl.gz")][1].endswith("r.jsonl.gz:2")
    (tmp_path / "bad.jsonl").write_text("[1]\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:1: expected a JSON object"):
        read_rows(tmp_path / "bad.jsonl")
    with pytest.raises(DataError, match="unsupported file type"):
        (tmp_path / "r.txt").write_text("x")
        read_rows(tmp_path / "r.txt")


def test_hub_source_through_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    rows = [{"question": "What is 1 + 1?", "answer": "1 + 1 = 2\n#### 2"}]

    def load_dataset(path: str, name: str | None, split: str) -> list[dict]:
        calls.append((path, name, split))
        return rows

    monkeypatch.setitem(sys.modules, "datasets", pytypes.SimpleNamespace(load_dataset=load_dataset))
    data = load_benchmark("gsm8k")
    assert calls == [("openai/gsm8k", "main", "test")]
    assert data.source == "hf://openai/gsm8k/main:test" and data.examples[0].completion.endswith(
        "2"
    )


def test_hub_failure_says_how_to_work_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("no network")

    monkeypatch.setitem(sys.modules, "datasets", pytypes.SimpleNamespace(load_dataset=offline))
    with pytest.raises(EvalError, match=r"hf://cais/mmlu/all:test.*point `file:` at a local"):
        load_benchmark("mmlu")
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(EvalError, match=r"needs the `datasets` package"):
        load_benchmark("mmlu")


def test_unknown_benchmark_and_bundle_list_the_choices() -> None:
    with pytest.raises(EvalError, match="choose one of: gsm8k, math, mmlu, ifeval, humaneval"):
        get_benchmark("gsm9k")
    with pytest.raises(EvalError, match=r"choose a bundle \(quick, standard, comprehensive\)"):
        bundle_items("huge")


def test_bundles_and_templates_name_known_benchmarks() -> None:
    for items in (*BUNDLES.values(), *TEMPLATES.values()):
        assert items and all(i.benchmark in BENCHMARKS for i in items)
    assert set(TEMPLATES) >= {"chat", "code", "math", "tools", "safety"}
    assert set(BUNDLES) == {"quick", "standard", "comprehensive"}


def test_shipped_sets_load() -> None:
    for name in ("safety", "tutoring", "tools"):
        data = load_benchmark(name)
        assert data.source == f"package:{name}.jsonl" and len(data.examples) >= 6
