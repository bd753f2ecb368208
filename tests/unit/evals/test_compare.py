"""Comparing two results sample by sample: the paired tests against known values, verdicts per
metric and tag, NLL results, mismatched suites, and ``evaltune compare`` through CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evaltune.cli.app import app
from evaltune.errors import EvalError
from evaltune.evals import EvalResult, SampleRecord, compare_results
from evaltune.evals.significance import mcnemar_exact, paired_permutation


@pytest.mark.parametrize(
    ("up", "down", "p"),
    [
        (0, 0, 1.0),
        (6, 0, 0.03125),  # 2 * 0.5**6
        (9, 1, 0.021484375),  # 2 * (1 + 10) / 1024, as scipy.stats.binomtest(1, 10)
        (3, 3, 1.0),
        (10, 2, 0.0385742),
    ],
)
def test_mcnemar_exact_known_values(up: int, down: int, p: float) -> None:
    assert mcnemar_exact(up, down) == pytest.approx(p, abs=1e-6)
    assert mcnemar_exact(down, up) == pytest.approx(p, abs=1e-6)  # two-sided


def test_paired_permutation_exact_and_sampled() -> None:
    assert paired_permutation([0.5] * 5) == pytest.approx(2 / 32)  # all same sign: 2 of 32
    assert paired_permutation([1, -1, 1, -1]) == 1.0
    assert paired_permutation([]) == 1.0 and paired_permutation([0, 0]) == 1.0
    # 30 positive differences: Monte Carlo floor (k + 1) / (N + 1), reproducible by seed
    sampled = paired_permutation([1.0] * 30, resamples=2000)
    assert sampled == pytest.approx(1 / 2001) == paired_permutation([1.0] * 30, resamples=2000)
    # weights scale each difference
    assert paired_permutation([1, -1], weights=[10, 1]) == 1.0


def record(i: int, correct: bool, tags: tuple[str, ...] = (), **metrics: float) -> SampleRecord:
    return SampleRecord(
        id=f"s{i}",
        prompt=f"p{i}",
        response="r",
        target="t",
        score=float(correct),
        correct=correct,
        tags=tags,
        metrics=dict(metrics),
    )


def result(
    outcomes: list[bool], model: str, suite_hash: str = "h", **per_sample: list[float]
) -> EvalResult:
    tags = [("math",) if i % 2 else ("geo",) for i in range(len(outcomes))]
    records = [
        record(i, ok, tags[i], **{k: v[i] for k, v in per_sample.items()})
        for i, ok in enumerate(outcomes)
    ]
    return EvalResult.from_records("demo", records, model_path=model, suite_hash=suite_hash)


def test_a_significant_improvement_with_fixed_and_broken_ids() -> None:
    a = result([False] * 10 + [True] * 10, "base", refusal_rate=[0.0] * 20)
    b = result([True] * 9 + [False] + [True] * 9 + [False], "round-2", refusal_rate=[0.0] * 20)
    c = compare_results(a, b)
    acc = c.metrics[0]
    assert (acc.name, acc.test, acc.wrong_to_right, acc.right_to_wrong) == (
        "accuracy", "mcnemar_exact", 9, 1)  # fmt: skip
    assert acc.a == 0.5 and acc.b == 0.9 and acc.delta == pytest.approx(0.4)
    assert acc.p_value == pytest.approx(0.021484375) and acc.verdict == "improved"
    assert c.improvements == [acc] and c.regressions == []
    assert c.fixed == tuple(f"s{i}" for i in range(9)) and c.broken == ("s19",)
    assert c.same_suite and c.shared == 20 and c.notes == ()
    refusal = next(m for m in c.metrics if m.name == "refusal_rate")
    assert refusal.verdict == "unchanged"
    assert set(c.tags) == {"geo", "math"} and c.tags["geo"][0].n == 10


def test_a_small_change_is_not_significant_and_regressions_are_named() -> None:
    a = result([True] * 10, "a")
    b = result([True] * 9 + [False], "b")
    assert compare_results(a, b).metrics[0].verdict == "not significant"
    many_a = result([True] * 20, "a")
    many_b = result([False] * 8 + [True] * 12, "b")
    c = compare_results(many_a, many_b)
    assert c.metrics[0].verdict == "regressed" and c.regressions == [c.metrics[0]]


def test_lower_is_better_metrics_flip_the_verdict() -> None:
    a = result([True] * 12, "a", engagement_rate=[1.0] * 12)
    b = result([True] * 12, "b", engagement_rate=[0.0] * 12)
    change = next(m for m in compare_results(a, b).metrics if m.name == "engagement_rate")
    assert change.delta == -1.0 and change.verdict == "improved"
    assert change.higher_is_better is False


def test_metrics_some_samples_lack_are_paired_where_present() -> None:
    def safety(over: list[float], model: str) -> EvalResult:
        records = [record(i, True, refusal_rate=1.0) for i in range(4)]
        records += [record(10 + i, True, over_refusal_rate=x) for i, x in enumerate(over)]
        return EvalResult.from_records("safety", records, model_path=model, suite_hash="h")

    c = compare_results(safety([0, 0, 0, 0, 0, 0], "a"), safety([1, 1, 1, 1, 1, 1], "b"))
    by_name = {m.name: m for m in c.metrics}
    assert by_name["refusal_rate"].n == 4 and by_name["refusal_rate"].verdict == "unchanged"
    assert by_name["over_refusal_rate"].n == 6
    assert by_name["over_refusal_rate"].verdict == "regressed"  # lower is better


def test_graded_scores_use_the_permutation_test() -> None:
    def graded(scores: list[float], model: str) -> EvalResult:
        records = [SampleRecord(f"s{i}", "p", "r", "t", s, s == 1.0) for i, s in enumerate(scores)]
        return EvalResult.from_records("f1", records, model_path=model, suite_hash="h")

    c = compare_results(graded([0.2] * 8, "a"), graded([0.6] * 8, "b"))
    mean = next(m for m in c.metrics if m.name == "mean_score")
    assert mean.test == "paired_permutation"
    assert mean.p_value == pytest.approx(2 / 256) and mean.verdict == "improved"


def test_nll_results_compare_token_weighted_nll() -> None:
    def nll(values: list[float], model: str) -> EvalResult:
        records = [
            SampleRecord(f"v{i}", "p", "", "c", 0.5, True, metrics={"nll": x, "tokens": 2.0})
            for i, x in enumerate(values)
        ]
        return EvalResult("val", tuple(records), {"nll": sum(values) / len(values), "n": 6},
                          {}, model, suite_hash="h")  # fmt: skip

    c = compare_results(nll([2.0] * 6, "a"), nll([1.5] * 6, "b"))
    assert [m.name for m in c.metrics] == ["nll"]
    assert c.metrics[0].delta == pytest.approx(-0.5) and c.metrics[0].verdict == "improved"
    assert c.fixed == () and c.broken == ()


def test_different_suites_are_compared_on_shared_ids_with_a_note() -> None:
    a = result([True, False, True], "a", suite_hash="h1")
    b_records = [record(1, True), record(2, True), record(7, False)]
    b = EvalResult.from_records("demo", b_records, model_path="b", suite_hash="h2")
    c = compare_results(a, b)
    assert (c.shared, c.only_a, c.only_b, c.same_suite) == (2, 1, 1, False)
    assert "suite hashes differ" in c.notes[0]
    disjoint = EvalResult.from_records("x", [record(99, True)], suite_hash="h3")
    with pytest.raises(EvalError, match="share no sample ids"):
        compare_results(a, disjoint)


def test_to_dict_is_json() -> None:
    a, b = result([False, True], "a"), result([True, True], "b")
    data = json.loads(json.dumps(compare_results(a, b).to_dict()))
    assert data["metrics"][0]["name"] == "accuracy" and data["fixed"] == ["s0"]
    assert data["tags"]["geo"][0]["wrong_to_right"] == 1


# -- the CLI ------------------------------------------------------------------------------------
@pytest.fixture
def two_results(tmp_path: Path) -> tuple[Path, Path]:
    a = result([False] * 10 + [True] * 10, "base")
    b = result([True] * 19 + [False], "round-2")
    a_path, b_path = tmp_path / "a" / "demo.jsonl", tmp_path / "b" / "demo.jsonl"
    a.write_jsonl(a_path)
    b.write_jsonl(b_path)
    return a_path, b_path


def test_cli_compare_prints_and_writes_comparison_json(two_results: tuple[Path, Path]) -> None:
    a_path, b_path = two_results
    run = CliRunner().invoke(app, ["compare", str(a_path), str(b_path), "--show", "3"])
    assert run.exit_code == 0, run.output
    assert "accuracy" in run.output and "improved" in run.output
    assert "fixed (wrong → right): 10 — s0, s1, s2, … 7 more" in run.output
    assert "improvements: accuracy" in run.output
    written = json.loads((b_path.parent / "comparison.json").read_text())
    assert written["a_path"] == str(a_path) and written["metrics"][0]["verdict"] == "improved"


def test_cli_compare_output_and_fail_on_regression(
    two_results: tuple[Path, Path], tmp_path: Path
) -> None:
    a_path, b_path = two_results
    out = tmp_path / "cmp" / "c.json"
    run = CliRunner().invoke(
        app, ["compare", str(b_path), str(a_path), "--output", str(out), "--fail-on-regression"]
    )
    assert run.exit_code == 1 and "regressions: accuracy" in run.output
    assert json.loads(out.read_text())["metrics"][0]["verdict"] == "regressed"


def test_cli_compare_missing_or_bad_files(tmp_path: Path, two_results: tuple[Path, Path]) -> None:
    missing = CliRunner().invoke(app, ["compare", str(tmp_path / "nope.jsonl"), "x.jsonl"])
    assert missing.exit_code == 2 and "no such result file" in missing.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    run = CliRunner().invoke(app, ["compare", str(bad), str(two_results[0])])
    assert run.exit_code == 1 and "not an evaltune result line" in run.output


def test_cli_suites_lists_and_shows() -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["suites"])
    assert listing.exit_code == 0 and "humaneval" in listing.output and "quick" in listing.output
    shown = runner.invoke(app, ["suites", "gsm8k"])
    assert shown.exit_code == 0 and "#### <number>" in shown.output
    bundle = runner.invoke(app, ["suites", "quick"])
    assert bundle.exit_code == 0 and "quick-gsm8k" in bundle.output
    unknown = runner.invoke(app, ["suites", "nope"])
    assert unknown.exit_code == 2 and "unknown suite name 'nope'" in unknown.output
