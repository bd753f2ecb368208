"""``evaltune export`` end to end on the tiny model: a real loop run, then each format through
the CLI, each read back by its own consumer (peft, transformers, transformers ``gguf_file=``)
with greedy outputs compared against the adapter's, independently of the export's self-check.

The GGUF run uses a copy of the tiny model with Gemma 3's layer pattern for two layers (both
sliding): GGUF readers assume every sixth layer global, which the tiny model's own pattern
breaks; its test below shows the self-check catching exactly that. The tiny BPE tokenizer is
not one transformers can read from GGUF, so the GGUF is read with the folder's tokenizer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from evaltune.cli import app
from evaltune.config import load_config
from evaltune.data import Message, get_renderer
from evaltune.engine.lora import LoraSpec, add_adapter, lora_config, save_adapter
from evaltune.export.manifest import sha256_of
from evaltune.loop import run_loop

PROMPTS = ["What is 12 plus 12?", "What is 3 plus 3?", "What is the capital of France?"]


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-gguf-ready") / "model"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["layer_types"] = ["sliding_attention", "sliding_attention"]
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def run_dir(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export-run")
    data = root / "data"
    data.mkdir()
    for name, rows in (("train", range(12)), ("eval", range(12, 18))):
        lines = [
            json.dumps({"question": f"What is {i} plus {i}?", "answer": str(2 * i)}) for i in rows
        ]
        (data / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    config = {
        "base_model": str(model_dir),
        "data": {"train": str(data / "train.jsonl"), "renderer": "role_colon"},
        "lora": {"rank": 4},
        "training": {"batch_size": 4, "steps_per_round": 3, "learning_rate": 1e-2},
        "evals": [
            {
                "name": "sums",
                "file": str(data / "eval.jsonl"),
                "grader": "regex",
                "pattern": "[0-9]",
                "threshold": 0.99,
                "max_tokens": 4,
            }
        ],
        "loop": {"max_rounds": 1, "eval_baseline": False},
        "output": {"workspace": str(root), "run_name": "export"},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return run_loop(load_config(root / "config.yaml")).path


def _adapter_of(run: Path) -> Path:
    summary = json.loads((run / "summary.json").read_text())
    return Path(summary["best"]["checkpoint"]["sampler_folder"])


def _greedy(model, prompts: list[list[int]], n: int = 6) -> list[list[int]]:
    out = []
    with torch.no_grad():
        for ids in prompts:
            got = model.generate(
                torch.tensor([ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False
            )
            out.append(got[0, len(ids) :].tolist())
    return out


@pytest.fixture(scope="module")
def reference(model_dir: Path, run_dir: Path) -> tuple[list[list[int]], list[list[int]]]:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    renderer = get_renderer("role_colon", tokenizer)
    prompts = [renderer.render_prompt([Message("user", p)]) for p in PROMPTS]
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, str(_adapter_of(run_dir))).eval()
    return prompts, _greedy(adapted, prompts)


def _export(*args: str) -> object:
    return CliRunner().invoke(app, ["export", *args])


def _manifest(out: Path) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        assert sha256_of(out / name) == entry["sha256"], name
    return manifest


def test_peft_export_loads_in_peft_and_the_vllm_variant_has_no_lm_head(
    model_dir: Path, run_dir: Path, reference, tmp_path: Path
) -> None:
    out = tmp_path / "peft"
    result = _export(str(run_dir), "--format", "peft", "--vllm", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "self-check: greedy outputs identical" in result.output
    assert "lm_head LoRA is dropped" in result.output
    manifest = _manifest(out)
    assert manifest["source"]["round"] == 1 and manifest["source"]["run_id"] == run_dir.name
    assert manifest["eval_scores"]["sums"]["n"] == 6 and manifest["check"]["passed"]
    assert 0.0 <= manifest["vllm"]["agreement"] <= 1.0
    prompts, expected = reference
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    assert _greedy(PeftModel.from_pretrained(base, str(out)).eval(), prompts) == expected
    assert not [
        k for k in load_file(str(out / "vllm" / "adapter_model.safetensors")) if "lm_head" in k
    ]


def test_merged_export_loads_in_transformers(run_dir: Path, reference, tmp_path: Path) -> None:
    out = tmp_path / "merged"
    result = _export(str(run_dir), "--format", "merged", "--out", str(out))
    assert result.exit_code == 0, result.output
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    assert merged.config.tie_word_embeddings is False  # the lm_head LoRA made it its own
    prompts, expected = reference
    assert _greedy(merged, prompts) == expected
    tokenizer = AutoTokenizer.from_pretrained(out)
    chat = [{"role": "user", "content": PROMPTS[0]}]
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert text.endswith(f"User: {PROMPTS[0]}\n\nAssistant:")
    assert _manifest(out)["format"] == "merged"


@pytest.mark.parametrize("kind", ["f16", "q8_0"])
def test_gguf_export_loads_with_gguf_file(
    run_dir: Path, reference, tmp_path: Path, kind: str
) -> None:
    out = tmp_path / f"gguf-{kind}"
    result = _export(str(run_dir), "--format", "gguf", "--gguf-type", kind, "--out", str(out))
    assert result.exit_code == 0, result.output
    name = f"model-{kind}.gguf"
    model = AutoModelForCausalLM.from_pretrained(out, gguf_file=name, dtype=torch.float32).eval()
    prompts, expected = reference
    got = _greedy(model, prompts)
    manifest = _manifest(out)
    if kind == "f16":
        assert got == expected and manifest["check"]["passed"]
    else:  # q8_0 reports its agreement rate instead of failing
        assert manifest["check"]["strict"] is False and 0.0 <= manifest["check"]["agreement"] <= 1
    modelfile = (out / "Modelfile").read_text()
    assert f"FROM ./{name}" in modelfile and "Assistant:" in modelfile


def test_tinker_path_of_a_run_exports(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    monkeypatch.chdir(run_dir.parent.parent)  # the workspace that holds runs/
    out = tmp_path / "from-uri"
    result = _export(
        summary["best"]["checkpoint"]["sampler"], "--format", "peft", "--out", str(out)
    )
    assert result.exit_code == 0, result.output
    assert _manifest(out)["source"]["kind"] == "checkpoint"


def test_a_mismatch_is_reported_and_recorded(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The tiny model's own layer pattern (layer 2 global, window 8) is one GGUF cannot carry:
    on prompts longer than the window the GGUF model answers differently, and export says so."""
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    adapted = add_adapter(base, "default", lora_config(base, LoraSpec(rank=4)), seed=0)
    adapter = tmp_path / "adapter"
    save_adapter(adapted, "default", adapter)
    (adapter / "evaltune_checkpoint.json").write_text(
        json.dumps({"base_model": str(tiny_model_dir)})
    )
    out = tmp_path / "gguf"
    result = _export(str(adapter), "--format", "gguf", "--gguf-type", "f32", "--out", str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    if manifest["check"]["passed"]:
        pytest.skip("the random tiny model happened to agree on every fixed prompt")
    assert result.exit_code == 1
    assert "self-check failed" in result.output and "Traceback" not in result.output
    assert any("layer_types" in note for note in manifest["notes"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere", "--format", "peft", "--out", "x"], "does not exist"),
        ([".", "--format", "onnx", "--out", "x"], "unknown export format 'onnx'"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["export", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_non_empty_out_is_refused(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "file").write_text("")
    result = _export(str(run_dir), "--format", "peft", "--out", str(tmp_path / "used"))
    assert result.exit_code == 2 and "is not empty" in result.output
