"""Rounds that train with RL, DPO or distillation, end to end on the tiny model: the per-round
schedule, the ``rl_on_plateau`` policy, the feedback store (``evaltune feedback add``), and
resume; the config errors a missing input gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from evaltune.cli import app
from evaltune.config import load_config
from evaltune.errors import ConfigError
from evaltune.loop import resume_run, run_loop
from evaltune.tracking import RunDir


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("methods-data")
    qa = [{"question": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(8)]
    write_jsonl(folder / "train.jsonl", qa)
    write_jsonl(
        folder / "eval.jsonl",
        [{"question": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(20, 24)],
    )
    write_jsonl(
        folder / "pairs.jsonl",
        [
            {"prompt": f"What is {i} plus {i}?", "chosen": str(2 * i), "rejected": "the fox"}
            for i in range(6)
        ],
    )
    return folder


def make_config(data: Path, model: Path, workspace: Path, **sections: Any) -> Path:
    config: dict[str, Any] = {
        "base_model": str(model),
        "data": {"train": str(data / "train.jsonl"), "renderer": "role_colon"},
        "lora": {"rank": 8},
        "training": {"batch_size": 4, "learning_rate": 1e-2, "min_steps": 1},
        "evals": [
            {
                "name": "qa",
                "file": str(data / "eval.jsonl"),
                "grader": "numeric",
                "threshold": 0.9,
                "max_tokens": 3,
            }
        ],
        "loop": {"max_rounds": 2, "plateau_rounds": 0},
        "rl": {"group_size": 4, "prompts_per_step": 4},
        "output": {"workspace": str(workspace), "run_name": "methods"},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    workspace.mkdir(parents=True, exist_ok=True)
    path = workspace / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_schedule_trains_sft_then_rl_with_rewards_from_the_target_grader(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = make_config(
        data_dir, tiny_model_dir, tmp_path, training={"methods": ["sft", "rl"], "min_steps": 1}
    )
    bars = Bars()
    run = run_loop(load_config(config), bars)
    state = run.read_json("state.json")
    first, second = state["rounds"][1], state["rounds"][2]
    assert (first["method"], second["method"]) == ("sft", "rl")
    # the RL round's progress bar knows its steps (not 0/0) and reaches them
    assert bars.bars["train-2"] == ("round 2 · rl", 2, 2)
    rl = second["train"]
    assert rl["method"] == "rl" and rl["reward_suite"] == "qa"
    assert rl["steps"] == second["steps"] == 2  # one pass over 8 prompts, 4 a step
    assert 0.0 <= rl["mean_reward"] <= 1.0 and rl["sampled_tokens"] > 0
    assert state["global_step"] == first["steps"] + second["steps"]
    events = [json.loads(line) for line in (run.path / "events.jsonl").read_text().splitlines()]
    rl_steps = [e for e in events if e.get("round") == 2 and "rl/reward" in e]
    assert len(rl_steps) == 2
    assert "schedule: round 2 trains with rl" in second.get("decision", {}).get("note", "") or (
        "schedule: round 2 trains with rl" in first["decision"]["note"]
    )
    report = (run.path / "report.md").read_text()
    assert "rl" in report


def test_rl_on_plateau_switches_a_stalled_sft_run_to_rl(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    # The tiny model never answers these sums: SFT round 1 does not beat the baseline, so
    # the policy switches round 2 to RL (the numeric grader is verifiable).
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        loop={"max_rounds": 2, "plateau_rounds": 2, "policies": ["rl_on_plateau"]},
    )
    state = run_loop(load_config(config)).read_json("state.json")
    assert [r.get("method") for r in state["rounds"][1:]] == ["sft", "rl"]
    assert "rl_on_plateau" in state["rounds"][1]["decision"]["note"]


class Bars:
    """A Reporter keeping each progress bar's description, total and last count."""

    def __init__(self) -> None:
        self.bars: dict[str, tuple[str, int, int]] = {}

    def message(self, text: str) -> None:
        pass

    def start(self, task: str, description: str, total: int) -> None:
        self.bars[task] = (description, total, 0)

    def advance(self, task: str, completed: int, info: str = "") -> None:
        description, total, _ = self.bars[task]
        self.bars[task] = (description, total, completed)

    def finish(self, task: str) -> None:
        pass


class StopAt:
    """A Reporter raising KeyboardInterrupt (as Ctrl-C would) at the first message with ``text``."""

    def __init__(self, text: str) -> None:
        self.text: str | None = text

    def message(self, text: str) -> None:
        if self.text and self.text in text:
            self.text = None
            raise KeyboardInterrupt

    def start(self, task: str, description: str, total: int) -> None:
        pass

    def advance(self, task: str, completed: int, info: str = "") -> None:
        pass

    def finish(self, task: str) -> None:
        pass


def test_a_dpo_round_moves_its_margin_and_uses_the_feedback_store(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        training={"methods": ["sft", "dpo"], "min_steps": 1, "passes": 2},
        dpo={"pairs": [str(data_dir / "pairs.jsonl")], "beta": 0.5},
    )
    with pytest.raises(KeyboardInterrupt):  # stopped before round 2 trains
        run_loop(load_config(config), StopAt("round 2 · training"))
    (folder,) = (tmp_path / "runs").iterdir()
    # feedback arrives between rounds: a malformed file is refused by line and field, and
    # nothing is added; a good one is appended to the run's store
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "x", "response": "y", "score": "high"}])
    cli = CliRunner()
    result = cli.invoke(app, ["feedback", "add", str(folder), str(bad)])
    assert result.exit_code == 2
    assert "bad.jsonl:1: field 'score': expected a finite number" in " ".join(result.output.split())
    assert not (folder / "feedback.jsonl").exists()
    good = write_jsonl(
        tmp_path / "feedback.jsonl",
        [
            {"prompt": "What is 9 plus 9?", "response": "18", "score": 1.0},
            {"prompt": "What is 9 plus 9?", "response": "banana", "score": 0.0},
        ],
    )
    result = cli.invoke(app, ["feedback", "add", str(folder), str(good)])
    assert result.exit_code == 0, result.output
    assert "added 0 pairs and 2 scored responses" in " ".join(result.output.split())
    resume_run(folder)
    state = RunDir.open(folder).read_json("state.json")
    dpo = state["rounds"][2]["train"]
    assert state["rounds"][2]["method"] == "dpo"
    assert dpo["pairs"] == 6 + 1  # the file's six and the feedback's best-vs-worst
    assert dpo["final_margin"] > 0 and dpo["final_loss"] < 0.6931


def test_distillation_rounds_on_and_off_policy(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    for mode in ("on_policy", "off_policy"):
        config = make_config(
            data_dir,
            tiny_model_dir,
            tmp_path / mode,
            training={"method": "distill", "min_steps": 1},
            distill={"teacher": str(tiny_model_dir), "mode": mode, "max_tokens": 4},
            loop={"max_rounds": 1, "plateau_rounds": 0},
        )
        state = run_loop(load_config(config)).read_json("state.json")
        summary = state["rounds"][1]["train"]
        assert state["rounds"][1]["method"] == "distill"
        assert summary["method"] == "distill" and summary["steps"] >= 1
        if mode == "on_policy":
            # the teacher is the student's own base model: they start in agreement
            assert abs(summary["first_reverse_kl"]) < 1e-3
        else:
            assert summary["mode"] == "off_policy" and summary["written"] >= 1


def test_method_inputs_are_checked_with_the_config(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = make_config(data_dir, tiny_model_dir, tmp_path, training={"method": "distill"})
    with pytest.raises(ConfigError, match=r"distill\.teacher.*a teacher model"):
        load_config(config)
    config = make_config(data_dir, tiny_model_dir, tmp_path, rl={"suite": "qaa"})
    with pytest.raises(ConfigError, match=r"rl\.suite: .*did you mean 'qa'\?; found \"qaa\""):
        load_config(config)
