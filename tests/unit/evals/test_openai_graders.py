"""OpenAI graders (the ``openai`` grader) on hand-built items, against what OpenAI's graders guide
and API reference say each type does: templates, every grader type, their pass rules, and the
results landing in an ``EvalResult``. Model graders ask a scripted backend (no network)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from evaltune.data import Example, Message
from evaltune.errors import EvalError
from evaltune.evals import EvalResult, grade_responses, load_suite, make_grader
from evaltune.evals.openai_graders import Formula, item_of, render, sample_of, similarity

BEAR = "fuzzy wuzzy was a bear"


def ex(target: str = "Paris", **metadata: Any) -> Example:
    return Example.single_turn("q1", "What is the capital of France?", target, metadata=metadata)


def grade(spec: dict[str, Any], response: str, example: Example | None = None, **options: Any):
    example = example or ex()
    grader = make_grader("openai", openai_grader=spec, **options)
    return grader(response, example.completion, example)


class Scripted:
    """A ChatBackend that answers from a list and keeps what it was asked."""

    name = "scripted"

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.asked: list[Sequence[Message]] = []

    def complete_many(self, conversations: Sequence[Sequence[Message]]) -> list[str]:
        self.asked += conversations
        return [self.replies.pop(0) for _ in conversations]


# -- templates ----------------------------------------------------------------------------------
def test_templates_read_both_namespaces_with_json_paths() -> None:
    context = {
        "item": item_of(ex(reference_answer="Paris", extra={"a": [1, {"b": "deep"}]}), "Paris"),
        "sample": sample_of('{"name": "get_weather", "arguments": {"city": "Paris"}}'),
    }
    text = render(
        "{{item.reference_answer}}|{{ item.extra.a[1].b }}|{{item['id']}}|{{item.completion}}|"
        "{{sample.output_tools[0].function.name}}|{{sample.output_json.arguments.city}}|"
        "{{item.extra.a}}",
        context,
    )
    assert text == 'Paris|deep|q1|Paris|get_weather|Paris|[1, {"b": "deep"}]'
    with pytest.raises(EvalError, match=r"item.missing.*no 'missing'"):
        render("{{item.missing}}", context)
    with pytest.raises(EvalError, match="unknown namespace 'output'"):
        render("{{output.text}}", context)


# -- string_check: eq, ne, like, ilike as the guide defines them ------------------------------
@pytest.mark.parametrize(
    ("operation", "response", "expected"),
    [
        ("eq", "Paris", 1.0),  # matches the reference, case-sensitive
        ("eq", "paris", 0.0),
        ("eq", "Paris ", 0.0),  # nothing is stripped
        ("ne", "Rome", 1.0),  # does not match
        ("ne", "Paris", 0.0),
        ("like", "The capital is Paris.", 1.0),  # contains the reference, case-sensitive
        ("like", "the capital is paris.", 0.0),
        ("ilike", "the capital is PARIS.", 1.0),  # contains it, case ignored
        ("ilike", "Rome", 0.0),
    ],
)
def test_string_check_operations(operation: str, response: str, expected: float) -> None:
    spec = {"type": "string_check", "name": "check", "input": "{{sample.output_text}}",
            "reference": "{{item.label}}", "operation": operation}  # fmt: skip
    assert grade(spec, response, ex(label="Paris")).score == expected


def test_string_check_rejects_an_unknown_operation() -> None:
    spec = {"type": "string_check", "name": "c", "input": "x", "reference": "y", "operation": "gt"}
    with pytest.raises(EvalError, match="operation 'gt' is not one of: eq, ne, like, ilike"):
        make_grader("openai", openai_grader=spec)


# -- text_similarity --------------------------------------------------------------------------
def test_text_similarity_metrics_on_known_pairs() -> None:
    for metric in ("fuzzy_match", "bleu", "gleu", "rouge_1", "rouge_2", "rouge_l"):
        assert similarity(metric, BEAR, BEAR) == pytest.approx(1.0), metric
    # rouge_1 F-measure: 3 of 3 words found, 3 of 6 recalled: P 1, R 0.5, F 2/3
    assert similarity("rouge_1", "the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)
    assert similarity("rouge_2", "the cat sat", "the dog ran") == 0.0
    assert similarity("fuzzy_match", "Paris", "paris") == 1.0  # default_process: case ignored
    assert 0 < similarity("fuzzy_match", BEAR, "fuzzy was a bear") < 1
    assert similarity("bleu", "a b c d", "w x y z") < 0.1


def test_text_similarity_passes_at_its_threshold() -> None:
    spec = {"type": "text_similarity", "name": "sim", "input": "{{sample.output_text}}",
            "reference": "{{item.reference}}", "evaluation_metric": "rouge_1",
            "pass_threshold": 0.6}  # fmt: skip
    passed = grade(spec, "the cat sat", ex("the cat sat on the mat"))
    assert passed.score == pytest.approx(2 / 3) and passed.correct is True
    failed = grade(spec, "the cat", ex("the cat sat on the mat"))
    assert failed.score == pytest.approx(0.5) and failed.correct is False


def test_meteor_without_wordnet_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import nltk.translate.meteor_score as meteor

    def missing(*_: Any, **__: Any) -> float:
        raise LookupError("Resource wordnet not found")

    monkeypatch.setattr(meteor, "meteor_score", missing)
    with pytest.raises(EvalError, match=r"WordNet.*nltk\.downloader wordnet"):
        similarity("meteor", BEAR, BEAR)


def test_cosine_uses_the_shipped_embedding_model() -> None:
    from evaltune.engine import embeddings

    if not embeddings.available():
        pytest.skip("all-MiniLM-L6-v2 is not installed")
    same = similarity("cosine", "The cat sat on the mat.", "The cat sat on the mat.")
    near = similarity("cosine", "The cat sat on the mat.", "A cat was sitting on a mat.")
    far = similarity("cosine", "The cat sat on the mat.", "Quarterly revenue grew by 4%.")
    assert same == pytest.approx(1.0, abs=1e-4) and far < near < same


# -- python: grade(sample, item) in the sandbox -----------------------------------------------
GUIDE_PYTHON = """
from rapidfuzz import fuzz, utils

def grade(sample, item) -> float:
    output_text = sample["output_text"]
    reference_answer = item["reference_answer"]
    return fuzz.WRatio(output_text, reference_answer, processor=utils.default_process) / 100.0
"""


def test_python_grader_runs_the_guides_example_out_of_process() -> None:
    spec = {"type": "python", "name": "fuzzy", "source": GUIDE_PYTHON}
    assert grade(spec, BEAR, ex(reference_answer=BEAR)).score == 1.0  # the guide's reward 1.0
    partial = grade(spec, "fuzzy was a bear", ex(reference_answer=BEAR)).score
    assert partial == pytest.approx(similarity("fuzzy_match", "fuzzy was a bear", BEAR))
    pid = {"type": "python", "name": "pid", "pass_threshold": 0.5,
           "source": f"import os\ndef grade(sample, item):\n    return float(os.getpid() != {os.getpid()})"}  # fmt: skip
    result = grade(pid, "anything")
    assert result.score == 1.0 and result.correct is True  # another process graded it


def test_python_grader_errors_score_zero_unless_every_sample_fails() -> None:
    source = "def grade(sample, item):\n    return 1 / len(sample['output_text'].strip('x'))"
    grader = make_grader("openai", openai_grader={"type": "python", "name": "p", "source": source})
    good, bad = grader.grade_batch([("a", "", ex()), ("xx", "", ex())])
    assert good.score == 1.0 and bad.score == 0.0 and "ZeroDivisionError" in bad.detail
    with pytest.raises(EvalError, match=r"failed on every sample.*ZeroDivisionError"):
        grader.grade_batch([("xx", "", ex()), ("x", "", ex())])
    with pytest.raises(EvalError, match="does not compile"):
        make_grader("openai", openai_grader={"type": "python", "name": "p", "source": "def ("})


# -- score_model and label_model through the judge client -------------------------------------
RUN_GRADER_EXAMPLE = {  # the score_model in OpenAI's "Run grader" API reference
    "type": "score_model",
    "name": "Example score model grader",
    "input": [{"role": "user", "content": (
        "Score how close the reference answer is to the model answer. Score 1.0 if they are "
        "the same and 0.0 if they are different. Return just a floating point score\n\n"
        "Reference answer: {{item.reference_answer}}\n\nModel answer: {{sample.output_text}}"
    )}],
    "model": "gpt-4o-2024-08-06",
    "sampling_params": {"temperature": 1, "top_p": 1, "seed": 42},
}  # fmt: skip


def test_score_model_renders_its_input_and_reads_the_score() -> None:
    judge = Scripted("1.0", '{"steps": [], "result": 0.25}', "I cannot tell")
    grader = make_grader("openai", openai_grader=RUN_GRADER_EXAMPLE, backend=judge)
    item = ex(reference_answer=BEAR)
    same, quarter, none = grader.grade_batch([(BEAR, "", item)] * 3)
    assert same.score == 1.0  # the reference's reward for identical answers
    assert quarter.score == 0.25 and none.score == 0.0 and "no score" in none.detail
    asked = judge.asked[0][-1].content
    assert f"Reference answer: {BEAR}\n\nModel answer: {BEAR}" in asked and '"result"' in asked


def test_score_model_range_and_pass_threshold() -> None:
    spec = {**RUN_GRADER_EXAMPLE, "range": [1, 10], "pass_threshold": 7}
    grader = make_grader("openai", openai_grader=spec, backend=Scripted("SCORE: 7", "[[11]]"))
    seven, outside = grader.grade_batch([(BEAR, "", ex(reference_answer=BEAR))] * 2)
    assert seven.score == pytest.approx(6 / 9) and seven.correct is True
    assert seven.metrics == {"grader_value": 7.0}
    assert outside.score == 0.0  # 11 is outside [1, 10]: no score


def test_label_model_passes_the_passing_labels() -> None:
    spec = {"type": "label_model", "name": "sentiment", "model": "gpt-4o-mini",
            "input": [{"role": "developer", "content": "Classify the sentiment."},
                      {"role": "user", "content": "{{sample.output_text}}"}],
            "labels": ["positive", "neutral", "negative"], "passing_labels": ["positive"]}  # fmt: skip
    judge = Scripted('{"label": "positive"}', "Negative.", "neutral", "no idea")
    grader = make_grader("openai", openai_grader=spec, backend=judge)
    scores = [r.score for r in grader.grade_batch([("I love it", "", ex())] * 4)]
    assert scores == [1.0, 0.0, 0.0, 0.0]
    assert judge.asked[0][0] == Message("system", "Classify the sentiment.")
    with pytest.raises(EvalError, match="passing_labels a subset"):
        make_grader("openai", openai_grader={**spec, "passing_labels": ["great"]})


def test_model_graders_without_a_backend_need_their_key_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    grader = make_grader("openai", openai_grader=RUN_GRADER_EXAMPLE, api_key_env="NO_SUCH_KEY")
    with pytest.raises(EvalError, match="NO_SUCH_KEY is not set"):
        grader("x", "", ex(reference_answer="x"))


# -- multi: calculate_output ------------------------------------------------------------------
TOOL_MULTI = {  # the guide's multigrader: a tool call's name and arguments, half each
    "type": "multi",
    "graders": {
        "name": {"name": "name_grader", "type": "string_check",
                 "input": "{{sample.output_tools[0].function.name}}",
                 "reference": "{{item.name}}", "operation": "eq"},
        "arguments": {"name": "arguments_grader", "type": "string_check",
                      "input": "{{sample.output_tools[0].function.arguments}}",
                      "reference": "{{item.arguments}}", "operation": "eq"},
    },
    "calculate_output": "0.5 * name + 0.5 * arguments",
}  # fmt: skip


def test_multi_combines_its_graders_by_the_formula() -> None:
    item = ex("", name="get_weather", arguments=json.dumps({"city": "Paris"}))
    right = grade(TOOL_MULTI, '{"name": "get_weather", "arguments": {"city": "Paris"}}', item)
    assert right.score == 1.0 and right.metrics == {"name": 1.0, "arguments": 1.0}
    half = grade(TOOL_MULTI, '{"name": "get_weather", "arguments": {"city": "Rome"}}', item)
    assert half.score == 0.5 and half.correct is None


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        ("a + b", 1.5),
        ("a * b - b / 2", 0.25),
        ("b ^ 2", 0.25),
        ("b ** 2", 0.25),
        ("min(a, b) + max(a, b)", 1.5),
        ("abs(b - a) + floor(1.7) - ceil(0.2)", 0.5),
        ("sqrt(b * b) * exp(0) + log(1)", 0.5),
        ("-(a - 2 * b)", 0.0),
    ],
)
def test_formula_operators_and_functions(formula: str, expected: float) -> None:
    parsed = Formula.parse(formula, ["a", "b"], "multi")
    assert parsed.evaluate({"a": 1.0, "b": 0.5}, "multi") == pytest.approx(expected)


@pytest.mark.parametrize(
    ("formula", "error"),
    [
        ("__import__('os').getcwd()", "'__import__', which is no grader"),
        ("max(a, b).real", "not allowed"),
        ("a.real", "not allowed"),
        ("c + 1", "names 'c', which is no grader"),
        ("a +", "does not parse"),
        ("a / (b - b)", "failed: float division by zero"),
    ],
)
def test_formula_refuses_what_is_not_arithmetic(formula: str, error: str) -> None:
    with pytest.raises(EvalError, match=error):
        Formula.parse(formula, ["a", "b"], "multi")


# -- errors, and results in an EvalResult ------------------------------------------------------
def test_an_unknown_grader_type_lists_the_types(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="unknown grader type 'regex'; choose one of: string_check"):
        make_grader("openai", openai_grader={"type": "regex", "name": "r"})
    with pytest.raises(EvalError, match="missing 'reference'"):
        make_grader("openai", openai_grader={"type": "string_check", "input": "x",
                                             "operation": "eq"})  # fmt: skip
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(EvalError, match=r"bad\.json: not JSON"):
        make_grader("openai", openai_grader=str(tmp_path / "bad.json"))


def test_results_land_in_an_eval_result(tmp_path: Path) -> None:
    rows = [{"question": "Capital of France?", "answer": "Paris", "label": "Paris"},
            {"question": "Capital of Italy?", "answer": "Rome", "label": "Rome"}]  # fmt: skip
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "g.json").write_text(json.dumps(TOOL_MULTI | {
        "graders": {"exact": {"type": "string_check", "name": "e", "operation": "eq",
                              "input": "{{sample.output_text}}", "reference": "{{item.label}}"},
                    "loose": {"type": "string_check", "name": "l", "operation": "ilike",
                              "input": "{{sample.output_text}}", "reference": "{{item.label}}"}},
        "calculate_output": "max(exact, loose)"}))  # fmt: skip
    suite = load_suite("capitals", renderer="role_colon", file=str(data), grader="openai",
                       grader_options={"openai_grader": str(tmp_path / "g.json")})  # fmt: skip
    records = grade_responses(suite.examples, ["Paris", "it is rome"], suite.grader)
    result = EvalResult.from_records("capitals", records)
    assert result.metrics["accuracy"] == 1.0
    assert result.metrics["exact"] == 0.5 and result.metrics["loose"] == 1.0
    assert suite.provenance["grader"] == "openai"


def test_a_config_suite_takes_the_grader_json_or_its_file(tmp_path: Path) -> None:
    import evaltune.loop.context  # noqa: F401  (registers the grader names configs accept)
    from evaltune.config import load_config
    from evaltune.errors import ConfigError

    (tmp_path / "d.jsonl").write_text('{"question": "q?", "answer": "a"}\n')
    (tmp_path / "g.json").write_text(json.dumps(TOOL_MULTI))
    suite = {"name": "s", "file": "d.jsonl", "grader": "openai", "threshold": 0.5}
    config = {"data": {"train": "d.jsonl"}, "evals": [
        {**suite, "openai_grader": "g.json"},
        {**suite, "name": "t", "openai_grader": TOOL_MULTI["graders"]["name"]},
    ]}  # fmt: skip
    (tmp_path / "c.json").write_text(json.dumps(config))
    cfg = load_config(tmp_path / "c.json")
    assert cfg.evals[0].openai_grader == str(tmp_path / "g.json")  # relative to the config
    assert cfg.evals[1].openai_grader["type"] == "string_check"
    config["evals"] = [suite, {**suite, "name": "u", "grader": "exact", "openai_grader": "g.json"}]
    (tmp_path / "c.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "c.json")
    assert "evals.0.openai_grader: expected an OpenAI grader" in str(caught.value)
    assert "evals.1.openai_grader: expected no openai_grader: only the openai grader" in str(
        caught.value
    )
