"""Kill and resume on the real model (issue 12): the embedded demo on Gemma 3 270M, SIGKILLed
at three points (mid-step, just after the checkpoint save, mid-evaluation) by
``kill_driver.py``, then resumed: each resumed run must end exactly as the uninterrupted one.
Slow: seven demo-sized runs, several minutes on two CPU cores. A fixed learning rate (the one
the probe picks for the demo) skips the probe, which this test does not need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaltune.demo import DEMO_CONFIG
from kill_driver import assert_resumed_like

pytestmark = pytest.mark.slow
DRIVER = Path(__file__).resolve().parents[1] / "kill_driver.py"


def test_the_demo_resumes_to_the_same_result_after_three_kills(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    command = [
        sys.executable, str(DRIVER), str(DEMO_CONFIG), str(out),
        "--workdir", str(tmp_path), "--points", "optim_step:5,save_state:1,sample:12",
        "--set", "training.learning_rate=0.000304", "--set", "loop.max_rounds=1",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    reference = results["reference"]
    assert reference["status"] == "finished" and reference["global_step"] > 5  # killed mid-round
    points = results["points"]
    assert [(p["point"], p["signal"], p["resumed_exit"]) for p in points] == [
        ("optim_step", 9, 0), ("save_state", 9, 0), ("sample", 9, 0)
    ]  # fmt: skip
    for p in points:
        assert_resumed_like(p, reference)
