"""tinker-cookbook's unmodified supervised loop trains against ``evaltune serve``.

The cookbook pins an older transformers than evaltune needs, so it runs from its own virtual
environment: ``$EVALTUNE_COOKBOOK_VENV``, else ``$EVALTUNE_CACHE/cookbook-venv`` (default cache
``~/.cache/evaltune``), created here on first use with ``pip install tinker-cookbook`` (the same
torch as evaltune's, the pinned tinker). Slow: creating the environment takes minutes once;
the run itself is a few steps on the tiny model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch

from serve_once import serve_once

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "cookbook" / "sft_against_serve.py"


def cookbook_python() -> Path:
    cache = Path(os.environ.get("EVALTUNE_CACHE", Path.home() / ".cache" / "evaltune"))
    venv = Path(os.environ.get("EVALTUNE_COOKBOOK_VENV", cache / "cookbook-venv"))
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import tinker_cookbook.supervised.train"]
    if python.is_file() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    torch_spec = f"torch=={torch.__version__.split('+')[0]}"
    install = [
        str(python),
        "-m",
        "pip",
        "install",
        "-q",
        torch_spec,
        "tinker==0.38.0",
        "tinker-cookbook",
    ]
    done = subprocess.run(install, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"could not install tinker-cookbook into {venv}:\n{done.stderr[-2000:]}")
    return python


def test_cookbook_supervised_train_runs_against_serve(tiny_model_dir: Path, tmp_path: Path):
    python = cookbook_python()
    server = serve_once(tiny_model_dir)
    env = {**os.environ, "TINKER_BASE_URL": server.base_url, "TINKER_API_KEY": server.api_key}
    env.pop("VIRTUAL_ENV", None)
    log_path = tmp_path / "cookbook-run"
    args = ["--model", str(tiny_model_dir), "--log-path", str(log_path), "--max-steps", "3",
            "--max-length", "200", "--batch-size", "2"]  # fmt: skip
    run = subprocess.run(
        [str(python), str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    assert "Training completed successfully" in run.stderr + run.stdout
    metrics = [json.loads(line) for line in (log_path / "metrics.jsonl").open()]
    assert len([m for m in metrics if "train_mean_nll" in m]) == 3
    final = json.loads((log_path / "checkpoints.jsonl").read_text().splitlines()[-1])
    assert server.folder(final["sampler_path"]).is_dir()
    assert server.folder(final["state_path"]).is_dir()
    # The adapter the cookbook trained is now a model on the OpenAI routes.
    model_id = final["sampler_path"].removeprefix("tinker://").split("/")[0]
    listed = httpx.get(
        f"{server.base_url}/v1/models", headers={"Authorization": f"Bearer {server.api_key}"}
    ).json()["data"]
    assert f"{model_id}/final" in {m["id"] for m in listed}
