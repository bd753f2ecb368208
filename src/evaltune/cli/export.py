"""``evaltune export``: a run's best adapter (or a ``tinker://`` checkpoint, or an adapter
folder) as a PEFT adapter, a merged Hugging Face folder or GGUF + Ollama ``Modelfile``, with a
``manifest.json`` and a self-check (``evaltune.export``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from evaltune.cli.console import console, guarded, out

__all__ = ["export"]


def export(
    source: Annotated[
        str,
        typer.Argument(
            help="A run folder (its best round), a tinker:// checkpoint path, or a PEFT "
            "adapter folder (adapter_config.json + adapter_model.safetensors)."
        ),
    ],
    format_: Annotated[
        str, typer.Option("--format", help="peft, merged or gguf.", show_default=False)
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="A new or empty folder to write into.", show_default=False)
    ],
    vllm: Annotated[
        bool,
        typer.Option(
            "--vllm",
            help="peft only: also write vllm/, the adapter without its lm_head LoRA (vLLM "
            "refuses one), and report how many greedy outputs that changes.",
        ),
    ] = False,
    gguf_type: Annotated[
        str | None,
        typer.Option("--gguf-type", help="gguf only: f16 (default), q8_0 or f32."),
    ] = None,
    round_: Annotated[
        int | None,
        typer.Option("--round", help="A run's round to export instead of its best one."),
    ] = None,
    base_model: Annotated[
        str | None,
        typer.Option(help="Base model of an adapter that does not name it."),
    ] = None,
) -> None:
    """Export a trained adapter for deployment (vLLM, transformers, llama.cpp, Ollama)."""

    def go() -> None:
        from evaltune.export import FORMATS, describe, export_model, resolve_source

        if format_ not in FORMATS:  # before any model code is imported
            from evaltune.errors import ConfigError

            raise ConfigError(
                f"unknown export format {format_!r}; choose one of: {', '.join(FORMATS)}"
            )
        found = resolve_source(source, base_model, round_)
        console.print(f"exporting {describe(found)} as {format_}", highlight=False)
        report = export_model(
            found,
            format_,
            out_dir,
            vllm=vllm,
            gguf_type=gguf_type,
            progress=lambda m: console.print(Text(m, style="dim")),
        )
        check = report.check
        verdict = "identical" if check.agree == check.prompts else "agreement"
        out.print(
            f"self-check: greedy outputs {verdict} on {check.agree}/{check.prompts} prompts "
            f"({check.agreement:.0%})",
            highlight=False,
        )
        for note in report.notes:
            out.print(f"note: {note}", highlight=False)
        out.print(f"wrote {len(report.files)} files to {out_dir} (manifest.json)", highlight=False)

    guarded(go)
