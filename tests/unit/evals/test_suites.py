"""Suites from plain arguments: loading, the suite hash (data + prompt template + grader +
renderer), provenance, per-sample metrics in results, old result files, bundles, and NLL as a
suite on the tiny model through both clients, evaluated through the ``Suite`` protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evaltune.backends.local import ServiceClient
from evaltune.data.renderers import get_renderer, to_datum
from evaltune.errors import EvalError
from evaltune.evals import (
    EvalResult,
    SampleRecord,
    compare_results,
    evaluate_nll,
    expand_bundle,
    leakage_views,
    load_nll_suite,
    load_suite,
    metric_direction,
    suite_fingerprint,
    validation_nll,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "benchmarks"


@pytest.fixture
def qa_file(tmp_path: Path) -> Path:
    path = tmp_path / "qa.jsonl"
    rows = [
        {
            "id": f"q{i}",
            "prompt": f"What is {i} plus {i}?",
            "completion": str(2 * i),
            "tags": ["sum"],
        }
        for i in range(6)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_an_application_file_suite(qa_file: Path) -> None:
    suite = load_suite("qa", file=str(qa_file), limit=4, renderer="role_colon")
    assert [e.id for e in suite.examples] == ["q0", "q1", "q2", "q3"]
    assert suite.kind == "generate" and suite.max_tokens == 64
    assert suite.provenance == {
        "kind": "generate",
        "source": str(qa_file),
        "benchmark": None,
        "grader": "normalized",
        "grader_options": {},
        "renderer": "role_colon",
        "template": "",
    }
    assert suite.grader("4", "4", suite.examples[2]).score == 1.0


def test_a_benchmark_suite_uses_its_scorer_template_and_max_tokens() -> None:
    gsm = {"benchmark": "gsm8k", "file": str(FIXTURES / "gsm8k.jsonl")}
    suite = load_suite("gsm", **gsm, renderer="chat_template")
    assert suite.provenance["grader"] == "gsm8k" and suite.max_tokens == 512
    assert suite.provenance["template"].startswith("Solve the following math word problem.")
    override = load_suite("gsm", **gsm, grader="numeric", max_tokens=300, renderer="chat_template")
    assert override.provenance["grader"] == "numeric" and override.max_tokens == 300


def test_suite_hash_covers_data_template_grader_and_renderer(qa_file: Path) -> None:
    def digest(**kw: Any) -> str:
        renderer = kw.pop("renderer", "role_colon")
        return load_suite("s", **kw, renderer=renderer).suite_hash

    gsm = {"benchmark": "gsm8k", "file": str(FIXTURES / "gsm8k.jsonl")}
    base = digest(**gsm)
    assert base == digest(**gsm) and len(base) == 64
    variants = {
        digest(**gsm, limit=3),  # fewer items asked
        digest(**gsm, renderer="chat_template"),
        digest(**gsm, grader_options={"match": "exact"}),
        digest(**gsm, grader="numeric"),
        digest(file=str(qa_file)),
    }
    assert base not in variants and len(variants) == 5


def test_the_template_text_is_in_the_hash() -> None:
    examples = load_suite(
        "s", benchmark="gsm8k", file=str(FIXTURES / "gsm8k.jsonl"), renderer="r"
    ).examples
    a = suite_fingerprint(examples, renderer="r", template="Q: {question}", grader="gsm8k")
    b = suite_fingerprint(examples, renderer="r", template="Question: {question}", grader="gsm8k")
    assert a != b


def test_bad_specs_raise_eval_errors(qa_file: Path) -> None:
    with pytest.raises(EvalError, match="needs a file"):
        load_suite("s", renderer="r")
    with pytest.raises(EvalError, match=r"grader 'gsm8k'.*unexpected keyword argument 'mode'"):
        load_suite("s", benchmark="gsm8k", file=str(FIXTURES / "gsm8k.jsonl"),
                   grader_options={"mode": "x"}, renderer="r")  # fmt: skip
    # a suite loaded for an endpoint (a renderer name only) cannot sample on a client
    with pytest.raises(EvalError, match="renderer name 'r' only"):
        load_suite("s", file=str(qa_file), renderer="r").evaluate(None)  # type: ignore[arg-type]


def test_expand_bundle_uses_data_dir_files_where_present(tmp_path: Path) -> None:
    (tmp_path / "gsm8k.jsonl").write_text((FIXTURES / "gsm8k.jsonl").read_text())
    members = expand_bundle("general", "quick", data_dir=tmp_path)
    assert [m.name for m in members] == [
        "general-gsm8k", "general-mmlu", "general-ifeval", "general-humaneval"]  # fmt: skip
    assert members[0].file == str(tmp_path / "gsm8k.jsonl") and members[0].limit == 50
    assert members[1].file is None


def test_leakage_views_add_bare_benchmark_questions() -> None:
    examples = load_suite(
        "m", benchmark="math", file=str(FIXTURES / "math.jsonl"), renderer="r"
    ).examples
    views = leakage_views(examples)
    assert len(views) == 2 * len(examples)
    assert views[len(examples)].prompt == "Simplify $\\frac{6}{8}$."


# -- results: per-sample metrics, direction, old files -------------------------------------------
def test_per_sample_metrics_become_suite_metrics_with_intervals() -> None:
    records = [
        SampleRecord(f"s{i}", "p", "r", "t", 1.0, True, tags=("a",),
                     metrics={"refusal_rate": float(i < 3), "judge_score": 5.0 + i})
        for i in range(4)
    ] + [SampleRecord("s9", "p", "r", "t", 0.0, False, metrics={"over_refusal_rate": 1.0})]  # fmt: skip
    result = EvalResult.from_records("safety", records)
    m = result.metrics
    assert m["refusal_rate"] == 0.75 and m["refusal_rate_n"] == 4
    assert (m["refusal_rate_ci_low"], m["refusal_rate_ci_high"]) == pytest.approx(
        (0.3006, 0.9544), abs=1e-4
    )
    assert m["judge_score"] == 6.5 and "judge_score_ci_low" not in m  # not binary
    assert m["over_refusal_rate"] == 1.0
    assert result.per_tag["a"]["refusal_rate"] == 0.75
    assert metric_direction("over_refusal_rate") == -1 and metric_direction("accuracy") == 1
    assert metric_direction("refusal_rate_ci_low") == 0 and metric_direction("n") == 0
    with pytest.raises(EvalError, match="clashes with a built-in metric"):
        EvalResult.from_records("x", [SampleRecord("a", "p", "r", "t", 1, True, metrics={"n": 1})])


def test_results_round_trip_and_version_1_files_still_read(tmp_path: Path) -> None:
    records = [SampleRecord("a", "p", "r", "t", 1.0, True, metrics={"pass@1": 1.0})]
    result = EvalResult.from_records("s", records, provenance={"grader": "humaneval"})
    path = tmp_path / "r.jsonl"
    result.write_jsonl(path)
    assert EvalResult.read_jsonl(path) == result
    header, sample = (json.loads(line) for line in path.read_text().splitlines())
    assert header["schema_version"] == 2 and header["provenance"] == {"grader": "humaneval"}
    header.update(schema_version=1)
    del header["provenance"]
    del sample["metrics"]
    path.write_text(json.dumps(header) + "\n" + json.dumps(sample) + "\n")
    old = EvalResult.read_jsonl(path)
    assert old.provenance == {} and old.records[0].metrics == {}


# -- NLL as a suite, on the tiny model -----------------------------------------------------------
@pytest.fixture(scope="module")
def clients(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    service = ServiceClient(checkpoint_dir=tmp_path_factory.mktemp("ckpt"))
    training = service.create_lora_training_client(str(tiny_model_dir), rank=4, seed=0).result()
    sampler = training.save_weights_and_get_sampling_client("nll").result()
    return training, sampler


def test_nll_suite_agrees_with_validation_nll_on_both_clients(
    clients: tuple[Any, Any], qa_file: Path
) -> None:
    training, sampler = clients
    renderer = get_renderer("role_colon", training.get_tokenizer())
    suite = load_nll_suite("val", str(qa_file), renderer=renderer)
    assert suite.kind == "nll" and suite.provenance["grader"] == "nll"
    progress: list[int] = []
    via_sampler = suite.evaluate(sampler, model_path="m", progress=lambda d, t: progress.append(d))
    via_training = evaluate_nll(training, suite.examples, renderer, suite="val")
    reference = validation_nll(
        training, [to_datum(renderer.render_example(e)) for e in suite.examples]
    )
    m = via_sampler.metrics
    assert m["nll"] == pytest.approx(reference.mean_nll, rel=1e-4)
    assert via_training.metrics["nll"] == pytest.approx(reference.mean_nll, rel=1e-4)
    assert m["tokens"] == reference.total_weight and m["n"] == 6 and progress == list(range(1, 7))
    assert m["nll_ci_low"] < m["nll"] < m["nll_ci_high"]
    assert m["perplexity"] == pytest.approx(2.718281828 ** m["nll"])
    assert "accuracy" not in m and via_sampler.per_tag == {}
    record = via_sampler.records[0]
    assert record.correct and record.response == "" and record.target == "0"
    assert 0 < record.score < 1 and record.detail.startswith("NLL ")
    assert via_sampler.model_path == "m" and via_sampler.suite_hash == suite.suite_hash
    comparison = compare_results(via_sampler, via_training)
    assert comparison.metrics[0].name == "nll" and abs(comparison.metrics[0].delta) < 1e-3
