"""Kill-and-resume driver for ``test_kill_resume.py``: run as a script, in its own process.

    python kill_driver.py CONFIG OUT_JSON [--workdir DIR] [--points name:call,...] [--set k=v]

It imports evaltune once, then forks a child per run so each run starts from a clean process
without paying the import again (torch runs no operation before a fork, so forking is safe).

1. A reference child runs the loop uninterrupted and counts the calls of every probe point.
2. For each kill point (a probe point and the number of the call), a child runs the loop in a
   fresh workspace and SIGKILLs itself at that call, before or after the call as the point says
   (as a power cut or ``kill -9`` would: no exception handler, no ``finally``, nothing flushed);
   then a second child resumes the run folder left behind with ``resume_run``.
3. Every finished run is summarised (per-round accuracies, optimizer steps, the losses per round,
   stop reason, whether every JSON file and every JSONL line parses) into OUT_JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import evaltune.backends.local as local
import evaltune.loop.runner as runner
import evaltune.tracking.run_dir as run_dir
from evaltune.config import load_config
from evaltune.loop import resume_run, run_loop

# Probe points: (name, object, attribute, when). "before": killed as the call starts (mid-phase:
# that work is lost); "after": killed as it returns (its result written, not yet recorded).
POINTS: list[tuple[str, Any, str, str]] = [
    ("optim_step", local.TrainingClient, "optim_step", "before"),  # mid-round
    ("save_state", local.TrainingClient, "save_state", "after"),  # weights saved, not recorded
    ("save_sampler", local.TrainingClient, "save_weights_for_sampler", "before"),  # mid-save
    ("sample", local.SamplingClient, "sample", "before"),  # mid-evaluation
    ("decide", runner, "decide_next", "before"),  # mid-decision
    ("summary", runner, "write_summary", "before"),  # mid-report
    ("replace", run_dir.os, "replace", "before"),  # a JSON file written to its temp, not renamed
    ("write_json", run_dir.RunDir, "write_json", "after"),  # a record written, the next not yet
    ("event", run_dir.RunDir, "event", "after"),  # anywhere: events come from every phase
]


def patch(counts: dict[str, int], kill_at: tuple[str, int] | None) -> None:
    for name, owner, attr, when in POINTS:
        real = getattr(owner, attr)

        def wrapper(*args: Any, _n=name, _real=real, _when=when, **kwargs: Any) -> Any:
            counts[_n] = counts.get(_n, 0) + 1
            hit = kill_at == (_n, counts[_n])
            if hit and _when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            result = _real(*args, **kwargs)
            if hit:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        setattr(owner, attr, wrapper)


def in_child(fn: Any) -> int:
    """Run ``fn`` in a forked child; its exit signal (9 for SIGKILL) or 0."""
    pid = os.fork()
    if pid == 0:
        try:
            fn()
        except BaseException as exc:  # a child must never return into the parent's code
            print(f"child failed: {exc!r}", file=sys.stderr, flush=True)
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status)
    return os.WEXITSTATUS(status) and -os.WEXITSTATUS(status)


def run_folders(workspace: Path) -> list[Path]:
    """The run folders (a hidden one is a folder still being created: not a run yet)."""
    runs = workspace / "runs"
    return sorted(p for p in runs.iterdir() if not p.name.startswith(".")) if runs.exists() else []


def summarise(workspace: Path) -> dict[str, Any]:
    (run,) = run_folders(workspace)
    broken = []
    for path in run.rglob("*.json"):
        try:
            json.loads(path.read_text())
        except ValueError:
            broken.append(str(path.relative_to(run)))
    for path in run.rglob("*.jsonl"):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            try:
                json.loads(line)
            except ValueError:
                broken.append(f"{path.relative_to(run)}:{i}")
    state = json.loads((run / "state.json").read_text())
    rounds = []
    for r in state["rounds"]:
        steps = []
        if r["round"] > 0:
            train = json.loads((run / "rounds" / str(r["round"]) / "train.json").read_text())
            steps = [[s["step"], s["loss"]] for s in train["steps"]]
        accuracy = {n: e["metrics"].get("accuracy") for n, e in r.get("evals", {}).items()}
        rounds.append({"round": r["round"], "phase": r["phase"], "acc": accuracy, "steps": steps})
    return {
        "status": state["status"],
        "stop_reason": state.get("stop_reason"),
        "global_step": state["global_step"],
        "rounds": rounds,
        "broken": broken,
        "summary": (run / "summary.json").is_file(),
    }


def assert_resumed_like(point: dict[str, Any], reference: dict[str, Any]) -> None:
    """A kill point's run (from OUT_JSON) was killed, resumed, and ended exactly as the
    uninterrupted ``reference``: same scores, steps, losses and stop reason, no broken file."""
    import pytest

    where = f"killed at {point['point']} call {point['call']} of {point['of']}"
    assert point["signal"] == signal.SIGKILL, f"{where}: the run was not killed"
    assert point["resumed_exit"] == 0, f"{where}: resume failed"
    got = point["result"]
    assert not got["broken"], f"{where}: unparseable {got['broken']}"
    assert got["status"] == "finished" and got["summary"], where
    assert got["stop_reason"] == reference["stop_reason"], where
    assert got["global_step"] == reference["global_step"], where
    assert [r["acc"] for r in got["rounds"]] == [r["acc"] for r in reference["rounds"]], where
    for mine, ref in zip(got["rounds"], reference["rounds"], strict=True):
        assert [s for s, _ in mine["steps"]] == [s for s, _ in ref["steps"]], where
        assert [loss for _, loss in mine["steps"]] == pytest.approx(
            [loss for _, loss in ref["steps"]], rel=1e-4
        ), where


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--workdir", type=Path, help="where the runs go (default: by the config)")
    parser.add_argument("--points", help="name:call,... (default: first, middle, last of each)")
    parser.add_argument("--set", action="append", default=[], help="a config override")
    args = parser.parse_args()
    config, out = args.config, args.out
    root = args.workdir or config.parent
    counts: dict[str, int] = {}
    results: dict[str, Any] = {}

    def run(workspace: Path, kill_at: tuple[str, int] | None) -> None:
        patch(counts, kill_at)
        cfg = load_config(config, [*args.set, f"output.workspace={workspace}"])
        run_loop(cfg)
        if kill_at is None:
            (workspace / "counts.json").write_text(json.dumps(counts))

    ref = root / "reference"
    assert in_child(lambda: run(ref, None)) == 0, "the uninterrupted run failed"
    results["reference"] = summarise(ref)
    calls = json.loads((ref / "counts.json").read_text())
    plan = []
    if args.points:
        for item in args.points.split(","):
            name, _, k = item.partition(":")
            plan.append((name, int(k)))
    else:
        for name, *_ in POINTS:
            n = calls.get(name, 0)
            plan += [(name, k) for k in sorted({1, (n + 1) // 2, n} - {0})]  # first, middle, last
    results["points"] = []
    for i, (name, k) in enumerate(plan):
        workspace = root / f"kill-{i}"
        signal_no = in_child(lambda w=workspace, at=(name, k): run(w, at))
        runs = run_folders(workspace)
        if runs:
            resumed = in_child(lambda folder=runs[0]: resume_run(folder))
        else:  # killed before the run folder existed: nothing to lose, run again
            resumed = in_child(lambda w=workspace: run(w, None))
        entry = {"point": name, "call": k, "of": calls.get(name, 0), "signal": signal_no}
        entry["resumed_exit"] = resumed
        entry["result"] = summarise(workspace) if resumed == 0 else None
        results["points"].append(entry)
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
