"""Secrets stay secret (issue 12): a whole loop on the Tinker backend against a real
``evaltune serve`` (tiny model, uvicorn at its most verbose log level), then every file the run
and the server wrote is searched for the API key the run used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from evaltune.config import load_config
from evaltune.loop import run_loop
from evaltune.server.launch import launch_server


def test_no_file_a_run_or_the_server_writes_holds_the_api_key(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, rows in (("train", range(8)), ("eval", range(8, 11))):
        with open(data / f"{name}.jsonl", "w") as f:
            for i in rows:
                f.write(json.dumps({"question": f"What is {i} plus {i}?", "answer": str(2 * i)}))
                f.write("\n")
    key = "tml-secret-7f3c9a1e2b4d6f8091a2b3c4d5e6f708"
    served = tmp_path / "served"
    with launch_server(
        str(tiny_model_dir), checkpoint_dir=served, api_key=key, extra_args=("--log-level", "trace")
    ) as server:
        monkeypatch.setenv("TINKER_API_KEY", key)
        config = {
            "base_model": str(tiny_model_dir),
            "backend": "tinker",
            "tinker": {"base_url": server.base_url},
            "data": {"train": str(data / "train.jsonl"), "renderer": "role_colon"},
            "lora": {"rank": 4},
            "training": {"batch_size": 4, "steps_per_round": 2, "learning_rate": 1e-2},
            "evals": [{"name": "qa", "file": str(data / "eval.jsonl"), "threshold": 0.99}],
            "loop": {"max_rounds": 1},
            "output": {"workspace": str(tmp_path / "ws"), "run_name": "secret"},
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        run = run_loop(load_config(path))
        log = server.log_path.read_bytes()  # the server deletes its log when it stops
    assert json.loads((run.path / "state.json").read_text())["status"] == "finished"
    written = [p for p in (tmp_path / "ws").rglob("*") if p.is_file()]
    written += [p for p in served.rglob("*") if p.is_file()]
    assert len(written) > 10  # the run folder and its checkpoints on the server
    holding = [str(p) for p in written if key.encode() in p.read_bytes()]
    assert holding == []
    assert b"POST /api/v1/" in log  # uvicorn's access log ran, at trace level
    assert key.encode() not in log
