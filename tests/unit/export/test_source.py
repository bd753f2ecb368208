"""Resolving what to export: a run folder's best (or chosen) round, an adapter folder, and every
bad input as one ConfigError naming the fix. No model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from evaltune.errors import ConfigError
from evaltune.export import export_model, resolve_source
from evaltune.export.source import FIXED_PROMPTS


def _adapter(folder: Path, base: str | None = "tiny-base") -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": None}))
    (folder / "adapter_model.safetensors").write_bytes(b"")
    if base:
        (folder / "evaltune_checkpoint.json").write_text(json.dumps({"base_model": base}))
    return folder


def _run(tmp_path: Path, best_round: int | None = 1) -> Path:
    run = tmp_path / "runs" / "20260101-000000-x"
    adapter = _adapter(run / "checkpoints" / "local-1" / "sampler_weights" / "round-1")
    evals = tmp_path / "eval.jsonl"
    evals.write_text(
        "".join(json.dumps({"question": f"q{i}?", "answer": "a"}) + "\n" for i in range(3))
    )
    config = {"base_model": "tiny-base", "data": {"renderer": "role_colon"}}
    config["evals"] = [{"name": "s", "file": str(evals)}]
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    checkpoint = {
        "sampler": "tinker://local-1/sampler_weights/round-1",
        "sampler_folder": str(adapter),
    }
    metrics = {"s": {"metrics": {"accuracy": 0.75}}}
    rounds = [
        {"round": 0, "checkpoint": None, "evals": metrics},
        {"round": 1, "checkpoint": checkpoint, "evals": metrics},
    ]
    best = None if best_round is None else {"round": 1, "checkpoint": checkpoint, "evals": metrics}
    summary = {"base_model": "tiny-base", "rounds": rounds, "best": best}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "state.json").write_text("{}")
    return run


def test_run_folder_resolves_to_its_best_round(tmp_path: Path) -> None:
    found = resolve_source(str(_run(tmp_path)))
    assert (found.kind, found.round, found.base_model, found.renderer) == (
        "run",
        1,
        "tiny-base",
        "role_colon",
    )
    assert found.adapter.name == "round-1"
    assert found.scores == {"s": {"accuracy": 0.75}}
    assert [m[0].content for m in found.prompts] == ["q0?", "q1?", "q2?"]


def test_adapter_folder_inside_a_run_takes_the_runs_prompts(tmp_path: Path) -> None:
    run = _run(tmp_path)
    found = resolve_source(str(run / "checkpoints" / "local-1" / "sampler_weights" / "round-1"))
    assert (found.kind, found.run_id, found.round) == ("adapter", run.name, 1)
    assert len(found.prompts) == 3


def test_bare_adapter_folder_uses_the_fixed_prompts(tmp_path: Path) -> None:
    found = resolve_source(str(_adapter(tmp_path / "a")))
    assert found.run_id is None and len(found.prompts) == len(FIXED_PROMPTS)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "does not exist"),
        (lambda p: p, "neither a run folder"),
        (lambda p: _adapter(p / "a", base=None), "pass --base-model"),
        (lambda p: _run(p, best_round=None), "pick one with --round"),
    ],
)
def test_bad_sources_are_one_config_error(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_source(str(make(tmp_path)))


def test_a_round_without_checkpoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no checkpoint for round 0; trained rounds: 1"):
        resolve_source(str(_run(tmp_path)), round_=0)


def test_malformed_tinker_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="malformed checkpoint path"):
        resolve_source("tinker://nope")


@pytest.mark.parametrize(
    ("fmt", "options", "message"),
    [
        ("onnx", {}, "unknown export format 'onnx'; choose one of: peft, merged, gguf"),
        ("merged", {"vllm": True}, "--vllm is for --format peft"),
        ("peft", {"gguf_type": "f16"}, "--gguf-type is for --format gguf"),
        ("gguf", {"gguf_type": "q4"}, "choose one of: f16, q8_0, f32"),
    ],
)
def test_bad_options_fail_before_any_model_loads(
    tmp_path: Path, fmt: str, options: dict, message: str
) -> None:
    found = resolve_source(str(_adapter(tmp_path / "a")))
    with pytest.raises(ConfigError, match=message):
        export_model(found, fmt, tmp_path / "out", **options)


def test_a_non_empty_out_folder_is_refused(tmp_path: Path) -> None:
    found = resolve_source(str(_adapter(tmp_path / "a")))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    with pytest.raises(ConfigError, match="is not empty"):
        export_model(found, "peft", tmp_path / "out")
