"""``evaltune run`` completes the embedded demo with ``backend: tinker`` against a local
``evaltune serve`` of Gemma 3 270M: the whole loop (baseline, train, save, evaluate, decide)
through the unmodified SDK. Slow: the demo takes minutes on two CPU cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evaltune.cli import app
from evaltune.demo import DEMO_CONFIG
from serve_once import serve_once

pytestmark = pytest.mark.slow


def test_demo_runs_on_the_tinker_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve_once("gemma-3-270m")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TINKER_API_KEY", server.api_key)
    overrides = ["backend=tinker", f"tinker.base_url={server.base_url}"]
    result = CliRunner().invoke(app, ["run", str(DEMO_CONFIG), *overrides])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["rounds_trained"] >= 1
    (suite,) = summary["suites"]
    _baseline, *trained = summary["rounds"]
    accuracy = [r["evals"][suite["name"]]["metrics"]["accuracy"] for r in summary["rounds"]]
    assert max(accuracy[1:]) > accuracy[0], accuracy  # training through the server helped
    state = trained[-1]["checkpoint"]["state"]
    assert state.startswith("tinker://") and server.folder(state).is_dir()
    assert "api_key" not in (run / "config.yaml").read_text().replace("api_key_env", "")
