"""Inspect's own ``inspect eval`` command with ``--model evaltune/...`` on the tiny model.

The provider is found through the installed ``inspect_ai`` entry point, in a fresh process, as
a user would run it; the scores are read back from the log Inspect wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from inspect_ai.log import read_eval_log

from evaltune.backends.local import ServiceClient
from evaltune.inspect import result_from_log

TASK = """
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import includes
from inspect_ai.solver import generate


@task
def tiny_qa():
    return Task(
        dataset=[
            Sample(id="greet", input="hello there!", target="hi"),
            Sample(id="sum", input="What is two plus two?", target="four"),
            Sample(id="capital", input="What is the capital of Italy?", target="Rome"),
        ],
        solver=generate(),
        scorer=includes(),
    )
"""


def inspect_eval(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "inspect"), "eval", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "NO_COLOR": "1"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    (tmp_path / "tiny_task.py").write_text(TASK)
    return tmp_path


@pytest.fixture
def checkpoint(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A sampler checkpoint folder of the tiny model (PEFT adapter + its base model's name)."""
    service = ServiceClient(checkpoint_dir=tmp_path / "ckpt")
    tc = service.create_lora_training_client(str(tiny_model_dir), rank=2, seed=0).result()
    path = tc.save_weights_for_sampler("inspect").result().path
    return tmp_path / "ckpt" / path.removeprefix("tinker://")


def test_inspect_eval_cli_runs_on_a_base_model_and_a_checkpoint(
    tiny_model_dir: Path, checkpoint: Path, task_dir: Path
) -> None:
    models = f"evaltune/{tiny_model_dir},evaltune/{checkpoint}"
    done = inspect_eval(
        ["tiny_task.py", "--model", models, "--max-connections", "32", "--max-tokens", "8",
         "--temperature", "0", "-M", "renderer=role_colon", "--log-dir", "logs",
         "--display", "plain"],
        task_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    logs = sorted((task_dir / "logs").glob("*.eval"))
    assert len(logs) == 2
    by_model = {}
    for path in logs:
        log = read_eval_log(str(path))
        assert log.status == "success", log.error
        assert log.eval.model_args == {"renderer": "role_colon"}
        by_model[log.eval.model] = log
        for sample in log.samples:
            value = sample.scores["includes"].value
            assert value in ("C", "I")
            assert (value == "C") == (sample.target.lower() in sample.output.completion.lower())
            assert sample.output.usage.output_tokens > 0
        result = result_from_log(log, model_path=log.eval.model)
        assert sorted(r.id for r in result.records) == ["capital", "greet", "sum"]
        inspect_scores = {str(s.id): s.scores["includes"].value for s in log.samples}
        assert {r.id: r.score for r in result.records} == {
            sid: 1.0 if value == "C" else 0.0 for sid, value in inspect_scores.items()
        }
        assert result.metrics["n"] == 3 and result.sampling["max_tokens"] == 8
    assert set(by_model) == {f"evaltune/{tiny_model_dir}", f"evaltune/{checkpoint}"}


def test_inspect_eval_cli_names_an_unknown_model(task_dir: Path) -> None:
    done = inspect_eval(
        ["tiny_task.py", "--model", "evaltune/./no-such-model", "--log-dir", "logs"], task_dir
    )
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0
    assert "unknown model './no-such-model': not a built-in alias" in output
    assert "Traceback" not in output
