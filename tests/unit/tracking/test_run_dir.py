"""The run folder: unique names, opening for resume, atomic writes, the events log."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

import evaltune.tracking.run_dir as run_dir_module
from evaltune.errors import EvaltuneError
from evaltune.tracking import RunDir, write_json_atomic, write_text_atomic


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every run folder is created in the same second."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    monkeypatch.setattr(run_dir_module, "datetime", Frozen)


def test_create_names_the_folder_by_time_and_name(tmp_path: Path, frozen_clock: None) -> None:
    run = RunDir.create(tmp_path, "demo")
    assert run.path == tmp_path / "runs" / "20260102-030405-demo"
    assert run.path.is_dir()
    assert run.run_id == "20260102-030405-demo"
    assert run.checkpoints == run.path / "checkpoints"


def test_create_is_unique_on_collision(tmp_path: Path, frozen_clock: None) -> None:
    paths = [RunDir.create(tmp_path, "demo").path for _ in range(3)]
    assert [p.name for p in paths] == [
        "20260102-030405-demo",
        "20260102-030405-demo-1",
        "20260102-030405-demo-2",
    ]
    assert all(p.is_dir() for p in paths)


def test_create_slugs_the_name(tmp_path: Path, frozen_clock: None) -> None:
    assert RunDir.create(tmp_path, "my run/v1: ü!").run_id == "20260102-030405-my-run-v1"
    assert RunDir.create(tmp_path, "///").run_id == "20260102-030405-run"
    assert len(RunDir.create(tmp_path, "x" * 200).run_id) == len("20260102-030405-") + 48


def test_open_an_existing_run(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r")
    run.write_json("state.json", {"status": "running"})
    again = RunDir.open(run.path)
    assert again.path == run.path
    assert again.read_json("state.json") == {"status": "running"}


def test_open_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(EvaltuneError) as info:
        RunDir.open(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "not an evaltune run folder" in message
    assert "state.json" in message
    assert "evaltune run" in message  # says which folder to pass instead


def test_open_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(EvaltuneError, match="not an evaltune run folder"):
        RunDir.open(tmp_path / "nope")


def test_round_dir_is_created(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r")
    assert run.round_dir(2) == run.path / "rounds" / "2"
    assert (run.path / "rounds" / "2").is_dir()


def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r")
    run.write_json("rounds/1/plan.json", {"lr": 1e-3})
    run.write_json("rounds/1/plan.json", {"lr": 2e-3})  # overwrite
    run.write_text("report.md", "# hi\n")
    assert sorted(p.name for p in (run.path / "rounds" / "1").iterdir()) == ["plan.json"]
    assert sorted(p.name for p in run.path.iterdir()) == ["report.md", "rounds"]
    assert run.read_json("rounds/1/plan.json") == {"lr": 2e-3}
    assert (run.path / "report.md").read_text() == "# hi\n"


def test_write_json_serialises_anything(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "a.json", {"path": tmp_path, "n": 1})
    assert json.loads((tmp_path / "a.json").read_text()) == {"path": str(tmp_path), "n": 1}


def test_failed_write_keeps_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    write_text_atomic(target, "old\n")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_events_round_trip(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r")
    assert run.events() == []  # no log yet
    run.event("run_started", run_id=run.run_id)
    run.event("step", round=1, **{"train/step": 1, "train/loss": 2.5})
    events = run.events()
    assert [e["event"] for e in events] == ["run_started", "step"]
    assert events[1]["train/loss"] == 2.5 and events[1]["round"] == 1
    assert all(isinstance(e["time"], float) for e in events)
    assert len((run.path / "events.jsonl").read_text().splitlines()) == 2


def test_events_skip_a_truncated_last_line(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r")
    run.event("a")
    run.event("b")
    log = run.path / "events.jsonl"
    text = log.read_text()
    log.write_text(text + text.splitlines()[0][:20])  # a line cut short by a kill
    assert [e["event"] for e in run.events()] == ["a", "b"]


def test_event_after_a_truncated_line_is_kept(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "r")
    run.event("a")
    log = run.path / "events.jsonl"
    log.write_text(log.read_text() + '{"time": 1.0, "event": "st')  # killed mid-line
    run.event("run_resumed")
    assert [e["event"] for e in run.events()] == ["a", "run_resumed"]


def test_create_writes_the_first_files_before_the_folder_appears(
    tmp_path: Path, frozen_clock: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []

    def first(run_id: str) -> dict[str, str]:
        seen.append(sorted(p.name for p in (tmp_path / "runs").iterdir()))
        return {"config.yaml": "a: 1\n", "state.json": json.dumps({"run_id": run_id})}

    run = RunDir.create(tmp_path, "demo", first)
    (staging,) = seen[0]  # while the first files are made, only the hidden staging folder
    assert staging.startswith(".20260102-030405-demo.")
    assert run.read_json("state.json") == {"run_id": "20260102-030405-demo"}
    assert (run.path / "config.yaml").read_text() == "a: 1\n"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["20260102-030405-demo"]

    # A write refused while a folder is being created is one EvaltuneError naming the workspace,
    # and leaves nothing behind: no folder that looks like a run without a state.json, and no
    # staging folder (a kill, which no handler sees, leaves only the hidden staging folder).
    def dies(path: Path, text: str) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(run_dir_module, "write_text_atomic", dies)
    with pytest.raises(EvaltuneError, match=r"cannot create a run folder under .*No space left"):
        RunDir.create(tmp_path, "killed", first)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["20260102-030405-demo"]
