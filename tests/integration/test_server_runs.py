"""``evaltune serve --runs WORKSPACE``: each finished run's best round is served as ``<run-id>``
and each trained round as ``<run-id>/round-<k>``, to the official ``openai`` client; a run that
finishes while the server is up joins; unknown names are a 404 listing what is served."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
import yaml

from evaltune.config import load_config
from evaltune.loop import run_loop
from evaltune.server.launch import launch_server


def _run(tmp: Path, model: Path, workspace: Path, name: str) -> str:
    data = tmp / f"data-{name}"
    data.mkdir()
    for split, rows in (("train", range(12)), ("eval", range(12, 15))):
        with open(data / f"{split}.jsonl", "w") as f:
            for i in rows:
                f.write(json.dumps({"question": f"What is {i} plus {i}?", "answer": str(2 * i)}))
                f.write("\n")
    config = {
        "base_model": str(model),
        "data": {"train": str(data / "train.jsonl"), "renderer": "role_colon"},
        "lora": {"rank": 4},
        "training": {"batch_size": 4, "steps_per_round": 3, "learning_rate": 3e-2},
        "evals": [{"name": "qa", "file": str(data / "eval.jsonl"), "threshold": 0.99}],
        "loop": {"max_rounds": 2},
        "output": {"workspace": str(workspace), "run_name": name},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return run_loop(load_config(path)).run_id


def test_runs_are_served_by_name(tiny_model_dir: Path, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    first = _run(tmp_path, tiny_model_dir, workspace, "first")
    best = json.loads((workspace / "runs" / first / "summary.json").read_text())["best"]["round"]
    with launch_server(
        str(tiny_model_dir),
        checkpoint_dir=tmp_path / "served",
        extra_args=("--runs", str(workspace), "--served-model-name", "tiny"),
    ) as server:
        client = openai.OpenAI(
            base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0
        )
        listed = {m.id for m in client.models.list().data}
        assert {first, f"{first}/round-1", f"{first}/round-2", "tiny"} <= listed

        def answer(model: str) -> str:
            done = client.completions.create(
                model=model, prompt="User: What is 3 plus 3?\n\nAssistant:", max_tokens=6,
                temperature=0,
            )  # fmt: skip
            return done.choices[0].text

        assert answer(first) == answer(f"{first}/round-{best}")
        assert answer(f"{first}/round-2") != answer("tiny")  # the adapter is really applied

        second = _run(tmp_path, tiny_model_dir, workspace, "second")  # while it serves
        assert second in {m.id for m in client.models.list().data}
        summary = json.loads((workspace / "runs" / second / "summary.json").read_text())
        assert answer(second) == answer(f"{second}/round-{summary['best']['round']}")
        with pytest.raises(openai.NotFoundError, match="/v1/models"):
            answer(f"{first}/round-9")
