"""A run that stops on one of our errors: marked ``failed`` with the reason, its last completed
phase intact, nothing from the failing round saved, and ``resume`` (with a lower learning rate)
finishes it. On the tiny model, where lr 1e30 makes the loss nan at the second step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from evaltune.config import load_config
from evaltune.errors import ConfigError, DataError, TrainingError
from evaltune.loop import resume_run, run_loop
from evaltune.tracking import RunDir


def write_data(folder: Path) -> Path:
    """train.jsonl (returned) and eval.jsonl beside it: "What is i plus i?"."""
    for name, rows in (("train", range(8)), ("eval", range(12, 14))):
        with open(folder / f"{name}.jsonl", "w") as f:
            for i in rows:
                row = {"question": f"What is {i} plus {i}?", "answer": str(2 * i)}
                f.write(json.dumps(row) + "\n")
    return folder / "train.jsonl"


def make_config(folder: Path, model: Path, train: Path, lr: float) -> Path:
    config: dict[str, Any] = {
        "base_model": str(model),
        "data": {"train": str(train), "renderer": "role_colon"},
        "lora": {"rank": 8},
        "training": {"batch_size": 4, "steps_per_round": 3, "learning_rate": lr},
        "evals": [
            {"name": "qa", "file": str(folder / "eval.jsonl"), "threshold": 0.9, "max_tokens": 2}
        ],
        "loop": {"max_rounds": 1},
        "output": {"workspace": str(folder / "ws"), "run_name": "fail"},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def the_run(folder: Path) -> RunDir:
    (path,) = (folder / "ws" / "runs").iterdir()
    return RunDir.open(path)


def test_a_diverged_round_saves_nothing_and_resumes_with_a_lower_lr(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = make_config(tmp_path, tiny_model_dir, write_data(tmp_path), lr=1e30)
    with pytest.raises(TrainingError, match="diverged at step 2 of 3") as caught:
        run_loop(load_config(config))
    run = the_run(tmp_path)
    assert f"evaltune resume {run.path} training.learning_rate=<lower>" in str(caught.value)
    state = run.read_json("state.json")
    assert state["status"] == "failed" and "diverged at step 2" in state["error"]
    # the last completed phase (the baseline) is intact; round 1 left nothing behind
    assert [(r["round"], r["phase"]) for r in state["rounds"]] == [(0, "evaluated")]
    assert (state["global_step"], state["last_state_path"]) == (0, None)
    assert not (run.path / "rounds" / "1" / "train.json").exists()
    assert not list(run.checkpoints.rglob("round-1*"))
    # the state is marked failed, then the run_failed alert goes to the sinks
    assert [(e["event"], e.get("alert")) for e in run.events()][-2:] == [
        ("run_failed", None), ("alert", "run_failed")
    ]  # fmt: skip

    resume_run(run.path, overrides=["training.learning_rate=1e-2"])
    state = run.read_json("state.json")
    assert (state["status"], state["error"], state["global_step"]) == ("finished", None, 3)
    assert state["rounds"][1]["lr"] == pytest.approx(1e-2)
    losses = [s["loss"] for s in run.read_json("rounds/1/train.json")["steps"]]
    assert len(losses) == 3 and all(loss == loss and loss < 1e3 for loss in losses)
    assert load_config(run.path / "config.yaml").training.learning_rate == pytest.approx(1e-2)
    resumed = [e for e in run.events() if e["event"] == "run_resumed"]
    assert resumed[-1]["overrides"] == ["training.learning_rate=1e-2"]


def test_a_data_error_before_the_first_phase_marks_the_run_failed(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    train = write_data(tmp_path)
    config = load_config(make_config(tmp_path, tiny_model_dir, train, lr=1e-2))
    train.write_text(train.read_text() + "{not json\n")  # found when the run is built
    with pytest.raises(DataError):
        run_loop(config)
    state = the_run(tmp_path).read_json("state.json")
    assert state["status"] == "failed"
    assert "train.jsonl" in state["error"]
    assert state["rounds"] == []


def test_resume_takes_training_overrides_only(tiny_model_dir: Path, tmp_path: Path) -> None:
    train = write_data(tmp_path)
    config = load_config(make_config(tmp_path, tiny_model_dir, train, lr=1e-2))
    train.write_text("{not json\n")
    with pytest.raises(DataError):
        run_loop(config)
    with pytest.raises(ConfigError, match=r"overrides of training\.\* only"):
        resume_run(the_run(tmp_path).path, overrides=["data.train=other.jsonl"])
