"""``export_model``: one adapter → a PEFT folder (with ``--vllm``, a variant without the
``lm_head`` LoRA vLLM refuses), a merged Hugging Face folder, or GGUF with an Ollama
``Modelfile``; then ``manifest.json``, and a self-check.

The self-check is the point of an export: the greedy continuations (a few tokens) of the run's
eval prompts are computed with the adapter on its base (``PeftModel``), then with the artifact
as written and read back (PEFT from the copied folder, transformers from the merged folder,
transformers ``gguf_file=`` from the GGUF). f32/f16 GGUF, merged and PEFT exports must agree on
every prompt, else an ``EngineError`` after the manifest records which prompts differed;
q8_0 reports its agreement rate, and the vLLM variant how many outputs dropping the
``lm_head`` LoRA changed. The torch side is ``evaltune.engine.export``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evaltune.errors import ConfigError, DataError, EngineError
from evaltune.export.manifest import write_manifest
from evaltune.export.source import ExportSource
from evaltune.export.templates import PromptFormat, modelfile, prompt_format

__all__ = ["FORMATS", "GGUF_TYPES", "CheckResult", "ExportReport", "export_model"]

FORMATS = ("peft", "merged", "gguf")
GGUF_TYPES = ("f16", "q8_0", "f32")  # the engine's list, kept here so a typo fails before torch
MAX_PROMPTS = 16
MAX_NEW_TOKENS = 8
PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors", "evaltune_checkpoint.json")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class CheckResult:
    """Greedy outputs of an artifact against the adapter's, prompt by prompt."""

    prompts: int
    agree: int
    differing: list[int]  # prompt indices whose greedy output differs
    strict: bool  # must every prompt agree?

    @property
    def agreement(self) -> float:
        return self.agree / self.prompts if self.prompts else 1.0

    @property
    def passed(self) -> bool:
        return not self.strict or self.agree == self.prompts


@dataclass
class ExportReport:
    out: Path
    format: str
    files: list[str]
    check: CheckResult
    vllm: CheckResult | None = None  # the vLLM variant against the adapter (changed = differing)
    notes: list[str] = field(default_factory=list)


def export_model(
    source: ExportSource,
    fmt: str,
    out: Path,
    *,
    vllm: bool = False,
    gguf_type: str | None = None,
    progress: Progress | None = None,
) -> ExportReport:
    """Write ``source`` as ``fmt`` into the new or empty folder ``out`` and check it."""
    say = progress or (lambda _message: None)
    _check_options(fmt, out, vllm, gguf_type)
    from evaltune.data import get_renderer
    from evaltune.engine import export as engine
    from evaltune.engine.models import load_tokenizer, resolve_model

    resolved = resolve_model(source.base_model, progress=say)
    tokenizer = load_tokenizer(resolved.path)
    renderer = get_renderer(source.renderer, tokenizer)
    form = prompt_format(renderer, tokenizer)
    prompts = _prompt_tokens(source, renderer)
    stop = {int(s) for s in renderer.stop_sequences if isinstance(s, int)}
    if tokenizer.eos_token_id is not None:
        stop.add(int(tokenizer.eos_token_id))
    say(f"loading {source.base_model} with the adapter…")
    model = engine.load_adapted(engine.load_base(resolved.path), source.adapter)
    say(f"greedy reference outputs on {len(prompts)} prompts…")
    reference = engine.greedy(model, prompts, MAX_NEW_TOKENS, stop)

    def check(artifact: Any, strict: bool) -> CheckResult:
        got = engine.greedy(artifact, prompts, MAX_NEW_TOKENS, stop)
        differing = [i for i, (a, b) in enumerate(zip(reference, got, strict=True)) if a != b]
        return CheckResult(len(prompts), len(prompts) - len(differing), differing, strict)

    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    vllm_check = None
    if fmt == "peft":
        for name in PEFT_FILES:
            if (source.adapter / name).is_file():
                shutil.copy2(source.adapter / name, out / name)
        say("checking the copied adapter loads in peft…")
        loaded = engine.load_adapted(model.unload(), out)
        result = check(loaded, strict=True)
        base = loaded.unload()
        if vllm:
            vllm_check, note = _vllm_variant(engine, source.adapter, out, base, say, check)
            notes.append(note)
    else:
        say("merging the adapter (lm_head untied when it carries a LoRA)…")
        merged, untied = engine.merge_adapter(model)
        if untied:
            notes.append(
                "lm_head carried a LoRA and is tied to embed_tokens in the base model: the "
                "merged model stores its own lm_head (tie_word_embeddings false)"
            )
        if fmt == "merged":
            say(f"writing the merged model to {out}…")
            engine.save_merged(merged, tokenizer, out, form.chat_template)
            del merged
            say("checking the merged folder loads in transformers…")
            result = check(engine.load_base(str(out)), strict=True)
        else:
            kind = gguf_type or "f16"
            result = _gguf(engine, merged, out, kind, form, source.base_model, say, check)
            notes += engine.gguf_caveats(merged.config)
    report = ExportReport(out, fmt, [], result, vllm_check, notes)
    _write(report, source, resolved.path, form, gguf_type if fmt == "gguf" else None)
    if not result.passed:
        raise EngineError(
            f"self-check failed: the exported {fmt} model's greedy outputs differ from the "
            f"adapter's on {len(result.differing)} of {result.prompts} prompts (indices "
            f"{result.differing[:10]}); the files are in {out}, and manifest.json records it"
        )
    return report


def _check_options(fmt: str, out: Path, vllm: bool, gguf_type: str | None) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if gguf_type is not None and fmt != "gguf":
        raise ConfigError(f"--gguf-type is for --format gguf, not {fmt}")
    if gguf_type is not None and gguf_type not in GGUF_TYPES:
        raise ConfigError(
            f"unknown --gguf-type {gguf_type!r}; choose one of: {', '.join(GGUF_TYPES)}"
        )
    if vllm and fmt != "peft":
        raise ConfigError(f"--vllm is for --format peft (a LoRA adapter vLLM serves), not {fmt}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty; give a new or empty folder")


def _prompt_tokens(source: ExportSource, renderer: Any) -> list[list[int]]:
    from evaltune.data import Message
    from evaltune.export.source import FIXED_PROMPTS

    tokens = []
    for messages in source.prompts:
        try:
            tokens.append(renderer.render_prompt(messages))
        except DataError:  # a prompt this renderer cannot take (the plain one, multi-turn)
            continue
        if len(tokens) == MAX_PROMPTS:
            break
    return tokens or [renderer.render_prompt((Message("user", p),)) for p in FIXED_PROMPTS]


def _vllm_variant(
    engine: Any, adapter: Path, out: Path, base: Any, say: Progress, check: Any
) -> tuple[CheckResult, str]:
    target = out / "vllm"
    modules = engine.lora_modules(adapter)
    had_head = any(m.split(".")[-1] == "lm_head" for m in modules)
    engine.strip_lm_head(adapter, target, base)
    say("measuring what dropping the lm_head LoRA changes…")
    result = check(engine.load_adapted(base, target), strict=False)
    if not had_head:
        return result, "vllm/: the adapter has no lm_head LoRA; only target_modules is rewritten"
    changed = len(result.differing)
    return result, (
        f"vllm/: the lm_head LoRA is dropped (vLLM refuses it); greedy outputs changed on "
        f"{changed} of {result.prompts} prompts ({changed / max(result.prompts, 1):.0%})"
    )


def _gguf(
    engine: Any,
    merged: Any,
    out: Path,
    kind: str,
    form: PromptFormat,
    base_model: str,
    say: Progress,
    check: Any,
) -> CheckResult:
    name = f"model-{kind}.gguf"
    with engine.builtin_gguf(base_model) as original:
        say(f"writing {name}" + (" (tokenizer from the original GGUF)…" if original else "…"))
        engine.write_gguf(merged, out / name, kind, form.chat_template, original)
    (out / "Modelfile").write_text(modelfile(name, form))
    del merged
    say(f"checking {name} loads in transformers (gguf_file=)…")
    return check(engine.load_gguf(out, name), strict=kind != "q8_0")


def _write(
    report: ExportReport,
    source: ExportSource,
    base_path: str,
    form: PromptFormat,
    gguf_type: str | None,
) -> None:
    def check_fields(c: CheckResult | None) -> dict[str, Any] | None:
        if c is None:
            return None
        return {**asdict(c), "agreement": c.agreement, "passed": c.passed}

    checked = {**check_fields(report.check), "max_new_tokens": MAX_NEW_TOKENS}  # type: ignore[dict-item]
    fields: dict[str, Any] = {
        "format": report.format,
        "gguf_type": gguf_type,
        "source": {
            "kind": source.kind,
            "adapter": str(source.adapter),
            "run_id": source.run_id,
            "run_dir": str(source.run_dir) if source.run_dir else None,
            "round": source.round,
            "checkpoint": source.checkpoint,
        },
        "base_model": {"name": source.base_model, "path": base_path},
        "eval_scores": source.scores,
        "renderer": form.renderer,
        "stop": list(form.stops),
        "check": {**checked, "prompt_source": source.prompt_source},
        "vllm": check_fields(report.vllm),
        "notes": report.notes,
    }
    write_manifest(report.out, fields)
    report.files = sorted(
        str(p.relative_to(report.out)) for p in report.out.rglob("*") if p.is_file()
    )
