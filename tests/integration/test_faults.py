"""Faults (issue 12, item 5), each injected for real on 127.0.0.1 or by the operating system:

- transient backend errors (503s and TCP resets from a proxy in front of ``evaltune serve``,
  and answers lost after the server did the work) are retried, reported, and change nothing;
- a permanent one (the key refused mid-run) stops the run with one line, marked ``failed``,
  and ``resume`` then finishes it as if nothing had happened;
- a file the kernel refuses to grow (``RLIMIT_FSIZE``: writes fail as on a full disk) and a
  read-only run folder give one clear error, leave ``state.json`` intact, and resume;
- two runs started at once in one workspace get their own folders and the same results;
- an endpoint suite asked through 503s and resets gets the same answers, every retry counted.

Generated code's CPU-time and memory limits are tested in ``tests/unit/evals/test_humaneval.py``.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from evaltune import faults
from evaltune.config import load_config
from evaltune.errors import BackendError
from evaltune.evals import EndpointClient, evaluate_endpoint, load_suite
from evaltune.loop import resume_run, run_loop
from fault_proxy import FaultProxy
from serve_once import serve_once


def _write_data(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", range(12)), ("eval", range(12, 16))):
        with open(folder / f"{name}.jsonl", "w") as f:
            for i in rows:
                f.write(json.dumps({"question": f"What is {i} plus {i}?", "answer": str(2 * i)}))
                f.write("\n")
    return folder


def _config(folder: Path, model: Path, workspace: Path, **extra: Any) -> Path:
    data = _write_data(folder / "data")
    config = {
        "base_model": str(model),
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
        "output": {"workspace": str(workspace), "run_name": "faults"},
        **extra,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _trace(run: Path) -> dict[str, Any]:
    """What a run computed: per round its accuracy and training losses, and the step count."""
    state = json.loads((run / "state.json").read_text())
    return {
        "status": state["status"],
        "steps": state["global_step"],
        "rounds": [
            (
                r["round"],
                r["evals"]["any"]["metrics"]["accuracy"],
                {k: (r.get("train") or {}).get(k) for k in ("first_loss", "final_loss", "tokens")},
            )
            for r in state["rounds"]
        ],
    }


def _retries(run: Path) -> dict[str, int]:
    total: dict[str, int] = {}
    for line in (run / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "retries":
            for cause, n in event["counts"].items():
                total[cause] = total.get(cause, 0) + n
    return total


class _Messages:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, text: str) -> None:
        self.lines.append(text)

    def start(self, *args: Any) -> None:
        pass

    def advance(self, *args: Any) -> None:
        pass

    def finish(self, *args: Any) -> None:
        pass


def _tinker_config(tmp: Path, model: Path, base_url: str, key_env: str, name: str) -> Path:
    return _config(
        tmp / name,
        model,
        tmp / name / "ws",
        backend="tinker",
        tinker={"base_url": base_url, "api_key_env": key_env},
    )


def _clean_run(tmp: Path, model: Path, server: Any) -> Path:
    """The reference: the same run on the Tinker backend through a proxy that injects nothing."""
    with FaultProxy(server.base_url, lambda n, method, path: None) as clean:
        config = _tinker_config(tmp, model, clean.base_url, server.key_env, "ref")
        return run_loop(load_config(config)).path


def test_transient_backend_errors_are_retried_reported_and_change_nothing(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    server = serve_once(tiny_model_dir)
    reference = _clean_run(tmp_path, tiny_model_dir, server)

    calls: dict[str, int] = {}

    def plan(n: int, method: str, path: str) -> str | None:
        route = path.rsplit("/", 1)[-1]
        calls[route] = calls.get(route, 0) + 1
        if route in ("forward_backward", "optim_step") and calls[route] in (2, 5):
            return "lost"  # done by the server, the answer lost: the SDK sends it again
        if method != "POST" or n % 6:
            return None  # every 6th request; its retry (the next number) goes through
        return "503" if (n // 6) % 2 else "reset"

    with FaultProxy(server.base_url, plan) as flaky:
        config = _tinker_config(tmp_path, tiny_model_dir, flaky.base_url, server.key_env, "flaky")
        said = _Messages()
        run = run_loop(load_config(config), said).path
    faults = [fault for _, fault, _ in flaky.injected]
    assert faults.count("503") >= 3 and faults.count("reset") >= 3 and faults.count("lost") == 4
    # Nothing repeated, nothing lost: a re-sent forward_backward or optim_step (same seq_id)
    # gets the first one's result instead of a second gradient or Adam step.
    assert _trace(run) == _trace(reference)
    retried = _retries(run)
    assert set(retried) == {"tinker: HTTP 503", "tinker: connection error"}
    assert retried["tinker: HTTP 503"] == faults.count("503")
    # A reset can cost the client more than one failed attempt (a pooled connection it broke
    # is found dead on its next use), so at least one each; the clean run saw no 503. (Its
    # count may hold connection errors of other tests' SDK clients, whose heartbeats go on
    # after their servers stopped: the count is per process.)
    assert retried["tinker: connection error"] >= faults.count("reset") + faults.count("lost")
    assert "tinker: HTTP 503" not in _retries(reference)
    assert any(line.startswith("backend: ") and "retried" in line for line in said.lines)


def test_a_permanent_backend_error_stops_cleanly_and_the_run_resumes(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    server = serve_once(tiny_model_dir)
    reference = _clean_run(tmp_path, tiny_model_dir, server)
    refused = {"on": False}

    def plan(n: int, method: str, path: str) -> str | None:
        if path.endswith("/forward_backward") and _trace_started(tmp_path / "cut" / "ws"):
            refused["on"] = True
        return "401" if refused["on"] else None  # the key revoked from then on

    with FaultProxy(server.base_url, plan) as proxy:
        config = _tinker_config(tmp_path, tiny_model_dir, proxy.base_url, server.key_env, "cut")
        with pytest.raises(BackendError) as failed:
            run_loop(load_config(config))
        (run,) = (tmp_path / "cut" / "ws" / "runs").iterdir()
        state = json.loads((run / "state.json").read_text())
        assert state["status"] == "failed" and "HTTP 401" in state["error"]
        assert "HTTP 401" in str(failed.value) and f"evaltune resume {run}" in str(failed.value)
        refused["on"] = False
        proxy.plan = lambda n, method, path: None  # the key works again
        resume_run(run)
    assert _trace(run) == _trace(reference)


def _trace_started(workspace: Path) -> bool:
    """True once round 1 is trained and evaluated in the run under ``workspace``."""
    for state in workspace.glob("runs/*/state.json"):
        rounds = json.loads(state.read_text())["rounds"]
        if any(r["round"] == 1 and r["phase"] != "trained" for r in rounds):
            return True
    return False


def _cli(args: list[str], limits: dict[int, int] | None = None, drop_root: bool = False):
    """``evaltune ARGS`` in a child process, optionally with resource limits or, when this
    runs as root, without the capability that lets root write into read-only folders."""

    def setup() -> None:
        for which, value in (limits or {}).items():
            resource.setrlimit(which, (value, value))
        if drop_root and os.geteuid() == 0:
            libc = ctypes.CDLL(None, use_errno=True)
            for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH: from the bounding set
                if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                    os._exit(77)

    done = subprocess.run(
        [sys.executable, "-m", "evaltune", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # what the person at the terminal sees, in order
        text=True,
        timeout=300,
        preexec_fn=setup,
        env={**os.environ, "COLUMNS": "1000"},  # one error, one line
    )
    if done.returncode == 77:
        pytest.skip("cannot drop root's override of file permissions here")
    return done


def _read_only(folder: Path, on: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        writable = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
        path.chmod(mode & ~writable if on else mode | stat.S_IWUSR)


def test_a_full_disk_and_a_read_only_run_folder_are_clear_errors_and_resume(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    reference = run_loop(load_config(_config(tmp_path / "ref", tiny_model_dir, tmp_path / "a")))
    config = _config(tmp_path / "cut", tiny_model_dir, tmp_path / "ws")
    # Files may not grow past 30 kB: JSON records fit, a checkpoint (44 kB of weights) does not.
    full = _cli(["run", str(config)], limits={resource.RLIMIT_FSIZE: 30_000})
    assert full.returncode == 1, full.stdout
    assert "Traceback" not in full.stdout
    assert "could not write (File too large" in full.stdout
    (run,) = (tmp_path / "ws" / "runs").iterdir()
    assert f"evaltune resume {run}" in full.stdout.replace("\n", "")
    before = (run / "state.json").read_bytes()
    state = json.loads(before)
    assert state["status"] == "failed" and "File too large" in state["error"]
    assert [r["round"] for r in state["rounds"]] == [0]  # the baseline kept; round 1 not begun

    _read_only(run, True)
    try:
        locked = _cli(["resume", str(run)], drop_root=True)
    finally:
        _read_only(run, False)
    assert locked.returncode == 1, locked.stdout
    assert "Traceback" not in locked.stdout
    assert "could not write (Permission denied" in locked.stdout
    assert (run / "state.json").read_bytes() == before  # untouched

    resumed = _cli(["resume", str(run)])
    assert resumed.returncode == 0, resumed.stdout
    assert _trace(run) == _trace(reference.path)


def test_an_unwritable_workspace_is_one_clear_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, tiny_model_dir, tmp_path / "ws")
    (tmp_path / "ws").mkdir()
    _read_only(tmp_path / "ws", True)
    try:
        done = _cli(["run", str(config)], drop_root=True)
    finally:
        _read_only(tmp_path / "ws", False)
    assert done.returncode == 1 and "Traceback" not in done.stdout
    assert f"cannot create a run folder under {tmp_path / 'ws' / 'runs'}" in done.stdout.replace(
        "\n", ""
    )
    assert not (tmp_path / "ws" / "runs").exists()


def test_two_runs_at_once_in_one_workspace_do_not_interfere(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = _config(tmp_path, tiny_model_dir, tmp_path / "ws")
    env = {**os.environ, "COLUMNS": "200"}
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "evaltune", "run", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=300)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    runs = sorted((tmp_path / "ws" / "runs").iterdir())
    assert len(runs) == 2 and not [p for p in runs if p.name.startswith(".")]
    traces = [_trace(run) for run in runs]
    assert traces[0] == traces[1] and traces[0]["status"] == "finished"
    for run in runs:  # each folder holds its own run only
        (started,) = [
            json.loads(line)
            for line in (run / "events.jsonl").read_text().splitlines()
            if json.loads(line)["event"] == "run_started"
        ]
        assert started["run_id"] == run.name


def test_an_endpoint_suite_survives_503s_and_resets(tiny_model_dir: Path, tmp_path: Path) -> None:
    server = serve_once(tiny_model_dir)
    data = _write_data(tmp_path / "data")
    suite = load_suite("qa", file=str(data / "train.jsonl"), renderer="endpoint-chat")

    def evaluate(plan: Any) -> tuple[list[str], dict[str, int], list[Any]]:
        with FaultProxy(server.base_url, plan) as proxy:
            endpoint = EndpointClient(
                proxy.base_url, str(tiny_model_dir), server.api_key, api="completions",
                retries=3, concurrency=1,
            )  # fmt: skip
            faults.drain()
            result = evaluate_endpoint(suite, endpoint, seed=0)
            mine = {k: n for k, n in faults.drain().items() if k.startswith(proxy.base_url)}
            return [r.response for r in result.records], mine, proxy.injected

    clean, none, _ = evaluate(lambda n, method, path: None)
    flaky, retried, injected = evaluate(
        lambda n, method, path: None if n % 3 else ("503" if n % 2 else "reset")
    )
    assert none == {} and len(injected) >= 4
    assert flaky == clean  # the same answers, each asked until it was answered
    assert sum(retried.values()) == len(injected)
    assert {k.rsplit(": ", 1)[1] for k in retried} == {"HTTP 503", "connection error"}
