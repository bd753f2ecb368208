"""The shipped demo and the shipped seed-format example, end to end on the real Gemma 3 270M
(converted once into ~/.cache/evaltune from the embedded GGUF; nothing is downloaded).

Slow: the demo takes a few minutes on two CPU cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evaltune.cli import app

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def only_run(cwd: Path) -> Path:
    (run,) = (cwd / "runs").iterdir()
    return run


def test_demo_reaches_its_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    run = only_run(tmp_path)
    assert run.name.endswith("-demo")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["stop_reason"] == "target_met"
    (suite,) = summary["suites"]
    threshold = suite["threshold"]
    assert threshold == 0.75  # the original walkthrough's target
    baseline, *trained = summary["rounds"]
    assert baseline["round"] == 0
    assert baseline["evals"][suite["name"]]["metrics"]["accuracy"] < threshold
    assert summary["rounds_trained"] >= 1
    assert len(trained) == summary["rounds_trained"]
    last = trained[-1]["evals"][suite["name"]]["metrics"]["accuracy"]
    assert last >= threshold
    assert summary["best"]["targets_met"] is True
    report = (run / "report.md").read_text()
    assert "stop reason: **target_met**" in report
    assert "## Learning-rate probe" in report  # learning_rate: auto is checked first
    assert "## Tags: what the loop learned about them" in report
    assert f"(≥ {threshold})" in report


def test_seed_example_config_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = REPO / "examples" / "eval_loop_config.json"
    assert config.is_file()
    monkeypatch.chdir(tmp_path)  # the seed format has no workspace: runs/ goes to the cwd
    result = CliRunner().invoke(app, ["run", str(config), "loop.max_rounds=1"])
    assert result.exit_code == 0, result.output
    run = only_run(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["rounds_trained"] == 1
    assert {s["name"] for s in summary["suites"]} == {"arithmetic", "capitals"}
    assert (run / "rounds" / "1" / "eval" / "capitals.jsonl").is_file()
