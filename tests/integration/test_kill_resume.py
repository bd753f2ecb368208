"""Kill and resume (issue 12): the loop on the tiny model, SIGKILLed at every probe point of
``kill_driver.py`` (its first, middle and last call: mid-step, after a checkpoint save, mid-save,
mid-evaluation, mid-decision, mid-report, a JSON file between its temp write and its rename,
after a record or an event),
then resumed. Each resumed run must end exactly as the uninterrupted one: the same scores per
round, the same optimizer steps with the same losses (no step repeated or skipped), the same
stop reason, and every JSON file and JSONL line in its folder parseable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kill_driver import assert_resumed_like

DRIVER = Path(__file__).resolve().parents[1] / "kill_driver.py"


def test_every_kill_point_resumes_to_the_uninterrupted_result(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    if not hasattr(__import__("os"), "fork"):
        pytest.skip("needs os.fork")
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "train.jsonl", "w") as f:
        for i in range(12):
            f.write(json.dumps({"question": f"What is {i} plus {i}?", "answer": str(2 * i)}) + "\n")
    with open(data / "eval.jsonl", "w") as f:
        for i in range(12, 16):
            f.write(json.dumps({"question": f"What is {i} plus {i}?", "answer": str(2 * i)}) + "\n")
    config = {
        "base_model": str(tiny_model_dir),
        "data": {"train": str(data / "train.jsonl"), "renderer": "role_colon"},
        "lora": {"rank": 4},
        "training": {"batch_size": 4, "steps_per_round": 3, "learning_rate": 1e-2},
        "evals": [
            {
                "name": "any",
                "file": str(data / "eval.jsonl"),
                "grader": "regex",
                "pattern": "[0-9]",
                "threshold": 0.99,
                "max_tokens": 4,
            }
        ],
        "loop": {"max_rounds": 2, "lr_decay": 0.5},
        "output": {"run_name": "kill"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(DRIVER), str(path), str(out)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    reference = results["reference"]
    assert reference["status"] == "finished" and reference["global_step"] == 6
    assert not reference["broken"]
    points = results["points"]
    assert len(points) >= 20
    assert {p["point"] for p in points} == {
        "optim_step", "save_state", "save_sampler", "sample", "decide", "summary", "replace",
        "write_json", "event",
    }  # fmt: skip
    for p in points:
        assert_resumed_like(p, reference)
