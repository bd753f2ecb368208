"""A clean first run (issue 15): ``evaltune run`` prints evaltune's own lines and progress bars
only, with no third-party warning or progress bar, along every path the demo takes: model load,
the learning-rate probe, the pool with embedding similarity (a second model loads), training,
sampling, checkpoint saves and the report; then ``evaltune export`` writing a merged model and a
GGUF and reading each back."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

TQDM = re.compile(r"\d+%\|.*\||it/s\]|s/it\]")  # tqdm's bar, as transformers and hub draw it


def test_a_run_prints_no_third_party_warning_or_progress_bar(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    def rows(tag: str, numbers: range, answer: bool = True) -> str:
        out = []
        for i in numbers:
            row = {"question": f"What is {i} plus {i}?", "answer": str(2 * i), "tags": [tag]}
            out.append(json.dumps(row if answer else {**row, "id": f"{tag}-{i}"}))
        return "\n".join(out) + "\n"

    (tmp_path / "train.jsonl").write_text(rows("seeded", range(8)))
    (tmp_path / "pool.jsonl").write_text(rows("a", range(10, 18)) + rows("b", range(20, 28)))
    (tmp_path / "eval.jsonl").write_text(
        rows("a", range(40, 43), False) + rows("b", range(50, 53), False)
    )
    config = {
        "base_model": str(tiny_model_dir),
        "data": {
            "train": str(tmp_path / "train.jsonl"),
            "pool": str(tmp_path / "pool.jsonl"),
            "renderer": "role_colon",
        },
        "lora": {"rank": 4},
        "training": {"batch_size": 4, "learning_rate": "auto", "probe_steps": 2, "min_steps": 1},
        "evals": [{"name": "qa", "file": str(tmp_path / "eval.jsonl"), "threshold": 0.99,
                   "max_tokens": 3}],
        "loop": {"max_rounds": 2, "selection": {"budget": 4, "similarity": "embedding"}},
        "output": {"workspace": str(tmp_path / "ws"), "run_name": "clean"},
    }  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))

    def evaltune(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "evaltune", *args],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "COLUMNS": "200", "PYTHONWARNINGS": ""},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        printed = done.stdout + done.stderr
        lines = [line for line in re.split(r"[\r\n]", printed) if line.strip()]
        assert [line for line in lines if "Warning" in line or "warn(" in line] == []
        assert [line for line in lines if TQDM.search(line)] == []
        return printed

    printed = evaltune("run", str(path))
    assert "probe" in printed and "round 2" in printed  # the paths above did run
    (run,) = (tmp_path / "ws" / "runs").iterdir()
    for kind in ("merged", "gguf"):  # writing a model, and reading a GGUF back
        out = str(tmp_path / kind)
        assert "self-check" in evaltune("export", str(run), "--format", kind, "--out", out)
