"""EvalResult: aggregation arithmetic, Wilson intervals, JSONL round trip, metric keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaltune.errors import EvalError
from evaltune.evals.result import (
    EvalResult,
    SampleRecord,
    compute_suite_hash,
    is_correct,
    wilson_interval,
)


def record(i: int, score: float, tags: tuple[str, ...] = (), stop: str = "stop") -> SampleRecord:
    return SampleRecord(
        id=f"ex{i}",
        prompt=f"prompt {i} — «unicode»",
        response=f"response {i}",
        target="t",
        score=score,
        correct=is_correct(score),
        tags=tags,
        detail="d",
        stop_reason=stop,
        num_tokens=i,
    )


@pytest.fixture
def result() -> EvalResult:
    records = [
        record(0, 1.0, ("math", "easy")),
        record(1, 0.0, ("math",)),
        record(2, 1.0, ("easy", "easy")),  # a repeated tag counts once
        record(3, 0.5, ("math",), stop="length"),
        record(4, 1.0),
    ]
    return EvalResult.from_records(
        "demo",
        records,
        model_path="tinker://m/sampler_weights/r1",
        sampling={"max_tokens": 8, "temperature": 0.0, "seed": None, "stop": ["\n", 1]},
        suite_hash="abc",
    )


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(8, 10, 0.490, 0.943), (0, 10, 0.0, 0.278), (10, 10, 0.722, 1.0), (1, 2, 0.095, 0.905)],
)
def test_wilson_interval_known_values(k: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(k, n)
    assert (round(lo, 3), round(hi, 3)) == (low, high)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_interval_without_data_is_uninformative() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_is_correct_needs_full_credit() -> None:
    assert is_correct(1.0) and is_correct(1.0 - 1e-12)
    assert not is_correct(0.99) and not is_correct(0.5)


def test_metrics_and_per_tag_arithmetic(result: EvalResult) -> None:
    m = result.metrics
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["mean_score"] == pytest.approx(3.5 / 5)
    assert (m["accuracy_ci_low"], m["accuracy_ci_high"]) == pytest.approx(wilson_interval(3, 5))
    assert m["truncated_fraction"] == pytest.approx(1 / 5)
    assert m["mean_response_tokens"] == pytest.approx(2.0)
    assert result.per_tag == {
        "easy": {"accuracy": 1.0, "n": 2, "mean_score": 1.0},
        "math": {"accuracy": pytest.approx(1 / 3), "n": 3, "mean_score": pytest.approx(0.5)},
    }
    assert result.created_at.endswith("+00:00")


def test_jsonl_round_trip_is_exact(result: EvalResult, tmp_path: Path) -> None:
    path = tmp_path / "rounds" / "1" / "eval" / "demo.jsonl"
    result.write_jsonl(path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["type"] for line in lines] == ["summary"] + ["sample"] * 5
    assert lines[0]["metrics"]["accuracy"] == result.metrics["accuracy"]
    assert "records" not in lines[0]
    assert EvalResult.read_jsonl(path) == result


def test_summary_has_no_records_and_is_json(result: EvalResult) -> None:
    summary = json.loads(json.dumps(result.summary()))
    assert "records" not in summary
    assert summary["suite"] == "demo" and summary["suite_hash"] == "abc"
    assert summary["sampling"]["max_tokens"] == 8


def test_to_metrics_uses_stage_name_keys(result: EvalResult) -> None:
    metrics = result.to_metrics()
    assert metrics["eval/demo/accuracy"] == pytest.approx(0.6)
    assert metrics["eval/demo/n"] == 5.0
    assert metrics["eval/demo/tag/math/accuracy"] == pytest.approx(1 / 3)
    assert metrics["eval/demo/tag/easy/n"] == 2.0
    assert all(isinstance(v, float) for v in metrics.values())
    assert result.to_metrics("eval/demo") == metrics
    assert set(result.to_metrics("r1/demo")) == {k.replace("eval/", "r1/", 1) for k in metrics}


def test_no_records_is_an_error() -> None:
    with pytest.raises(EvalError, match="suite 'demo': no records"):
        EvalResult.from_records("demo", [])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "empty file"),
        ('{"type": "sample", "id": "x"}\n', r":1: not an evaltune result line"),
        ("not json\n", r":1: not an evaltune result line"),
        ('{"type": "summary", "schema_version": 99}\n', "schema_version 99"),
    ],
)
def test_read_jsonl_rejects_bad_files(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(EvalError, match=match):
        EvalResult.read_jsonl(path)


def test_read_jsonl_points_at_a_bad_sample_line(result: EvalResult, tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    result.write_jsonl(path)
    lines = path.read_text().splitlines()
    lines[2] = json.dumps({"type": "sample", "id": "x", "bogus": 1})
    path.write_text("\n".join(lines))
    with pytest.raises(EvalError, match=r"r.jsonl:3: .*unknown sample fields \['bogus'\]"):
        EvalResult.read_jsonl(path)


def test_suite_hash_covers_file_grader_options_and_renderer(tmp_path: Path) -> None:
    suite = tmp_path / "suite.jsonl"
    suite.write_text('{"prompt": "a", "completion": "b"}\n')
    base = compute_suite_hash(suite, "exact", "role_colon")
    assert len(base) == 64 and base == compute_suite_hash(str(suite), "exact", "role_colon")
    variants = {
        compute_suite_hash(suite, "normalized", "role_colon"),
        compute_suite_hash(suite, "exact", "chat_template"),
        compute_suite_hash(suite, "exact", "role_colon", {"pattern": "x"}),
    }
    suite.write_text('{"prompt": "a", "completion": "c"}\n')
    variants.add(compute_suite_hash(suite, "exact", "role_colon"))
    assert base not in variants and len(variants) == 4
