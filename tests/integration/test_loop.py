"""The evaluation loop end to end on the tiny model: run folder contents, stop rules, guards,
and resume after an interruption at a phase boundary.

The tiny random model answers "What is i plus i?" with garbage before training, nothing after
~4 steps at lr 1e-2, and digits after ~8: the regex grader with "." tells the phases apart
(any non-empty answer passes) and ``^[^0-9]+$`` passes only the untrained model's garbage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from evaltune.config import load_config
from evaltune.evals import EvalResult
from evaltune.loop import resume_run, run_loop
from evaltune.tracking import RunDir

UNREACHABLE = "zzz qqq"


class Recorder:
    """A Reporter that keeps every message; ``stop_on`` raises KeyboardInterrupt (as Ctrl-C
    would) on the first message or task description containing that text."""

    def __init__(self, stop_on: str | None = None) -> None:
        self.stop_on = stop_on
        self.messages: list[str] = []
        self.started: list[str] = []

    def _check(self, text: str) -> None:
        if self.stop_on and self.stop_on in text:
            self.stop_on = None
            raise KeyboardInterrupt

    def message(self, text: str) -> None:
        self.messages.append(text)
        self._check(text)

    def start(self, task: str, description: str, total: int) -> None:
        self.started.append(description)
        self._check(description)

    def advance(self, task: str, completed: int, info: str = "") -> None:
        pass

    def finish(self, task: str) -> None:
        pass


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("loop-data")

    def write(name: str, rows: range, answer: Any) -> None:
        with open(folder / name, "w") as f:
            for i in rows:
                tag = "odd" if i % 2 else "even"
                row = {"question": f"What is {i} plus {i}?", "answer": answer(i), "tags": [tag]}
                f.write(json.dumps(row) + "\n")

    write("train.jsonl", range(12), lambda i: str(2 * i))
    write("eval.jsonl", range(12, 16), lambda i: UNREACHABLE)
    write("guard.jsonl", range(16, 20), lambda i: UNREACHABLE)
    write("val.jsonl", range(20, 23), lambda i: str(2 * i))
    return folder


def make_config(
    folder: Path,
    model: Path,
    workspace: Path,
    evals: list[dict[str, Any]] | None = None,
    **sections: dict[str, Any],
) -> Path:
    """A run config in ``workspace`` (config.yaml) for the tiny model; sections update the
    defaults below (3 steps of 4 at lr 1e-2, 2 rounds, lr halved after each)."""
    config: dict[str, Any] = {
        "base_model": str(model),
        "data": {"train": str(folder / "train.jsonl"), "renderer": "role_colon"},
        "lora": {"rank": 8},
        "training": {"batch_size": 4, "steps_per_round": 3, "learning_rate": 1e-2},
        "evals": evals
        or [
            {
                "name": "qa",
                "file": str(folder / "eval.jsonl"),
                "grader": "normalized",
                "threshold": 0.9,
                "max_tokens": 4,
            }
        ],
        "loop": {"max_rounds": 2, "lr_decay": 0.5},
        "output": {"workspace": str(workspace), "run_name": "loop"},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    workspace.mkdir(parents=True, exist_ok=True)
    path = workspace / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def any_answer(folder: Path, name: str = "any", **kw: Any) -> dict[str, Any]:
    """A suite that any non-empty answer passes."""
    suite = {"name": name, "file": str(folder / "eval.jsonl"), "grader": "regex"}
    return suite | {"pattern": ".", "threshold": 0.5, "max_tokens": 4} | kw


def the_run(workspace: Path) -> RunDir:
    (path,) = (workspace / "runs").iterdir()
    return RunDir.open(path)


def step_numbers(run: RunDir) -> list[int]:
    return [e["train/step"] for e in run.events() if e["event"] == "step"]


# -- (a) + (c): an unreachable target, two rounds with lr decay --------------------------------
@pytest.fixture(scope="module")
def unreachable(
    data_dir: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunDir, Recorder, Path]:
    workspace = tmp_path_factory.mktemp("unreachable")
    config = make_config(
        data_dir,
        tiny_model_dir,
        workspace,
        data={"validation": str(data_dir / "val.jsonl")},
    )
    reporter = Recorder()
    run = run_loop(load_config(config), reporter)
    return run, reporter, config


def test_max_rounds_with_lr_decay(unreachable: tuple[RunDir, Recorder, Path]) -> None:
    run, reporter, _ = unreachable
    summary = run.read_json("summary.json")
    assert summary["stop_reason"] == "max_rounds"
    assert summary["rounds_trained"] == 2
    rounds = summary["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[1]["lr"] == pytest.approx(1e-2)
    assert rounds[2]["lr"] == pytest.approx(0.5 * rounds[1]["lr"])
    assert [r["decision"]["reason"] for r in rounds[1:]] == ["continue", "max_rounds"]
    assert all(r["val_nll"] > 0 for r in rounds[1:])  # a validation file was given
    assert rounds[2]["train"]["final_loss"] < rounds[1]["train"]["first_loss"]
    assert summary["best"]["round"] in (1, 2)
    assert reporter.messages[-1].startswith("finished: max_rounds")


def test_run_folder_contents(unreachable: tuple[RunDir, Recorder, Path]) -> None:
    run, _, config = unreachable
    assert run.path.parent == config.parent / "runs"
    for name in ("config.yaml", "state.json", "events.jsonl", "summary.json", "report.md"):
        assert (run.path / name).is_file(), name
    state = run.read_json("state.json")
    assert state["status"] == "finished"
    assert state["stop_reason"] == "max_rounds"
    assert state["global_step"] == 6
    assert state["finished_at"] >= state["started_at"]
    for k in (0, 1, 2):
        folder = run.path / "rounds" / str(k)
        result = EvalResult.read_jsonl(folder / "eval" / "qa.jsonl")
        assert result.metrics["n"] == 4
        assert json.loads((folder / "analysis.json").read_text())["round"] == k
        assert (folder / "plan.json").is_file() == (k > 0)
        assert (folder / "train.json").is_file() == (k > 0)
    plan = run.read_json("rounds/2/plan.json")
    assert plan["lr"] == pytest.approx(5e-3)
    assert (plan["steps"], plan["batch_size"], plan["train_examples"]) == (3, 4, 12)
    train = run.read_json("rounds/2/train.json")
    assert [s["step"] for s in train["steps"]] == [4, 5, 6]
    summary = run.read_json("summary.json")
    best = summary["rounds"][summary["best"]["round"]]
    assert Path(best["checkpoint"]["sampler_folder"]).is_dir()


def test_events_log(unreachable: tuple[RunDir, Recorder, Path]) -> None:
    run, _, _ = unreachable
    events = run.events()
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    steps = [e for e in events if e["event"] == "step"]
    assert [e["train/step"] for e in steps] == [1, 2, 3, 4, 5, 6]
    assert [e["round"] for e in steps] == [1, 1, 1, 2, 2, 2]
    assert [e["train/lr"] for e in steps] == pytest.approx([1e-2] * 3 + [5e-3] * 3)
    assert [(e["round"], e["suite"]) for e in events if e["event"] == "eval"] == [
        (0, "qa"),
        (1, "qa"),
        (2, "qa"),
    ]
    assert [e["reason"] for e in events if e["event"] == "decision"] == ["continue", "max_rounds"]
    assert [e["round"] for e in events if e["event"] == "val_nll"] == [1, 2]
    assert events[-1]["stop_reason"] == "max_rounds"


def test_config_snapshot_reloads(unreachable: tuple[RunDir, Recorder, Path]) -> None:
    run, _, config = unreachable
    snapshot = load_config(run.path / "config.yaml")
    assert snapshot == load_config(config)
    assert snapshot.loop.lr_decay == 0.5 and snapshot.training.steps_per_round == 3


def test_baseline_below_threshold_is_reported(unreachable: tuple[RunDir, Recorder, Path]) -> None:
    run, reporter, _ = unreachable
    baseline = run.read_json("summary.json")["rounds"][0]
    assert baseline["evals"]["qa"]["metrics"]["accuracy"] < 0.9
    assert baseline["targets_met"] is False
    assert "round 0 · qa: accuracy 0.000 (n=4) · threshold 0.9" in reporter.messages
    report = (run.path / "report.md").read_text()
    lines = report.splitlines()
    assert "stop reason: **max_rounds** after 2 training round(s)" in report
    header = next(line for line in lines if line.startswith("| round |"))
    assert "qa accuracy (≥ 0.9)" in header
    row = next(line for line in lines if line.startswith("| baseline |"))
    column = header.split(" | ").index("qa accuracy (≥ 0.9)")
    assert float(row.split(" | ")[column].split()[0]) < 0.9
    assert "## Per-tag accuracy: qa" in report
    assert "| even |" in report and "| odd |" in report


# -- (b) a reachable target ------------------------------------------------------------------
def test_target_met_after_one_round(data_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        evals=[any_answer(data_dir)],
        training={"steps_per_round": 8},
        loop={"max_rounds": 3},
    )
    run = run_loop(load_config(config))
    summary = run.read_json("summary.json")
    assert summary["stop_reason"] == "target_met"
    assert summary["rounds_trained"] == 1
    assert summary["best"]["round"] == 1
    assert summary["best"]["targets_met"] is True
    assert summary["rounds"][1]["evals"]["any"]["metrics"]["accuracy"] >= 0.5
    assert not (run.path / "rounds" / "2").exists()


# -- (d) resume -------------------------------------------------------------------------------
def test_resume_before_round_2_trains(
    data_dir: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
    unreachable: tuple[RunDir, Recorder, Path],
) -> None:
    config = make_config(
        data_dir, tiny_model_dir, tmp_path, data={"validation": str(data_dir / "val.jsonl")}
    )
    with pytest.raises(KeyboardInterrupt):
        run_loop(load_config(config), Recorder(stop_on="round 2 · training"))
    run = the_run(tmp_path)
    state = run.read_json("state.json")
    assert state["status"] == "running"
    assert [(r["round"], r["phase"]) for r in state["rounds"]] == [(0, "evaluated"), (1, "decided")]
    assert state["global_step"] == 3
    assert state["plan"]["lr"] == pytest.approx(5e-3)
    assert step_numbers(run) == [1, 2, 3]

    reporter = Recorder()
    resume_run(run.path, reporter)
    assert any(m.startswith("resuming") for m in reporter.messages)
    state = run.read_json("state.json")
    assert state["status"] == "finished"
    assert state["stop_reason"] == "max_rounds"
    assert step_numbers(run) == [1, 2, 3, 4, 5, 6]
    assert [e["round"] for e in run.events() if e["event"] == "eval"] == [0, 1, 2]
    # Round 2 continued from round 1's weights and optimizer: the same losses as a run that
    # was never interrupted.
    resumed = [s["loss"] for s in run.read_json("rounds/2/train.json")["steps"]]
    straight = [s["loss"] for s in unreachable[0].read_json("rounds/2/train.json")["steps"]]
    assert resumed == pytest.approx(straight, rel=1e-3)


def test_resume_after_round_2_was_trained(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = make_config(data_dir, tiny_model_dir, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_loop(load_config(config), Recorder(stop_on="round 2 · eval"))
    run = the_run(tmp_path)
    state = run.read_json("state.json")
    assert state["status"] == "running"
    assert [(r["round"], r["phase"]) for r in state["rounds"]][-1] == (2, "trained")
    assert state["global_step"] == 6
    assert step_numbers(run) == [1, 2, 3, 4, 5, 6]

    reporter = Recorder()
    resume_run(run.path, reporter)
    assert not any("· training" in m for m in reporter.messages)  # round 2 is not retrained
    assert reporter.started == ["round 2 · eval qa"]
    assert step_numbers(run) == [1, 2, 3, 4, 5, 6]
    assert [e["round"] for e in run.events() if e["event"] == "eval"] == [0, 1, 2]
    assert EvalResult.read_jsonl(run.path / "rounds/2/eval/qa.jsonl").metrics["n"] == 4
    state = run.read_json("state.json")
    assert (state["status"], state["stop_reason"]) == ("finished", "max_rounds")
    assert state["rounds"][2]["phase"] == "decided"
    assert run.read_json("summary.json")["rounds_trained"] == 2


def test_resume_a_finished_run_does_nothing(unreachable: tuple[RunDir, Recorder, Path]) -> None:
    run, _, _ = unreachable
    before = (run.path / "events.jsonl").read_text()
    reporter = Recorder()
    resume_run(run.path, reporter)
    assert reporter.messages == ["run already finished (max_rounds); nothing to resume"]
    assert (run.path / "events.jsonl").read_text() == before


def test_resume_after_an_interrupted_finish_writes_the_summary(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import evaltune.loop.runner as runner

    real = runner.write_summary

    def interrupted_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(runner, "write_summary", real)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "write_summary", interrupted_once)
    config = make_config(data_dir, tiny_model_dir, tmp_path, loop={"max_rounds": 1})
    with pytest.raises(KeyboardInterrupt):
        run_loop(load_config(config))
    run = the_run(tmp_path)
    resume_run(run.path)
    assert (run.path / "summary.json").is_file()
    assert (run.path / "report.md").is_file()


# -- (e) guards -------------------------------------------------------------------------------
def guard_suite(folder: Path, tolerance: float) -> dict[str, Any]:
    """Passes on the untrained model's non-digit garbage; fails once it answers with digits."""
    return any_answer(folder, "keep", file=str(folder / "guard.jsonl")) | {
        "role": "guard",
        "pattern": "^[^0-9]+$",
        "threshold": None,
        "tolerance": tolerance,
    }


@pytest.mark.parametrize(
    ("tolerance", "stop_reason"),
    [(0.0, "max_rounds"), (1.0, "target_met")],
    ids=["guard-breaks", "guard-holds"],
)
def test_guard_decides_whether_a_met_target_stops(
    data_dir: Path, tiny_model_dir: Path, tmp_path: Path, tolerance: float, stop_reason: str
) -> None:
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        evals=[any_answer(data_dir), guard_suite(data_dir, tolerance)],
        training={"steps_per_round": 8},
        loop={"max_rounds": 1},
    )
    run = run_loop(load_config(config))
    summary = run.read_json("summary.json")
    base, trained = summary["rounds"]
    assert base["evals"]["keep"]["metrics"]["accuracy"] == 1.0
    assert trained["evals"]["keep"]["metrics"]["accuracy"] == 0.0
    assert trained["evals"]["any"]["metrics"]["accuracy"] >= 0.5
    assert trained["targets_met"] is True  # targets alone are met either way
    assert summary["stop_reason"] == stop_reason
    assert [s["role"] for s in summary["suites"]] == ["target", "guard"]
    assert (run.path / "rounds/1/eval/keep.jsonl").is_file()
    header = next(
        line for line in (run.path / "report.md").read_text().splitlines() if "| round" in line
    )
    assert "any accuracy (≥ 0.5)" in header and "| keep accuracy |" in header


# -- (f) plateau ------------------------------------------------------------------------------
def test_plateau_stop(data_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    config = make_config(
        data_dir,
        tiny_model_dir,
        tmp_path,
        training={"steps_per_round": 1},
        loop={"max_rounds": 5, "plateau_rounds": 1, "min_improvement": 0.01, "lr_decay": 1.0},
    )
    run = run_loop(load_config(config))
    summary = run.read_json("summary.json")
    assert summary["stop_reason"] == "plateau"
    assert summary["rounds_trained"] == 2
    assert [r["decision"]["reason"] for r in summary["rounds"][1:]] == ["continue", "plateau"]
    assert summary["rounds"][2]["lr"] == summary["rounds"][1]["lr"]  # no decay
    assert step_numbers(run) == [1, 2]
